#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace corral::json {

// The one JSON writer for everything corral emits: worker settings, the admin endpoints' bodies.
// Documents are built with Boost.JSON's value model and written here, so that whatever bytes
// they hold (a path, an app's error text) the output is valid JSON.

using Array = boost::json::array;
using Object = boost::json::object;
using Value = boost::json::value;

/// `value` as one line of JSON. Strings, keys included, are made valid UTF-8 (see validUtf8);
/// numbers are written as people write them ("7.5", not Boost's "7.5E0"); a NaN or an infinity,
/// which JSON cannot hold, becomes null.
std::string write(const Value& value);

/// `text` with every byte that is not part of a well-formed UTF-8 sequence (RFC 3629: no
/// overlong forms, no surrogates, nothing above U+10FFFF) replaced by U+FFFD.
std::string validUtf8(std::string_view text);

}  // namespace corral::json
