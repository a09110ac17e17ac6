#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "config/inputs.hpp"
#include "util/text.hpp"

namespace corral {

// Value parsers. Each names its input in the message and says what would be accepted.

/// A whole number from `min` to `max`; else fails with `expected`.
int parseInRange(const Input& input, int min, int max, std::string_view expected);

/// A worker count from 1 to kMaxWorkers.
int parseWorkers(const Input& input);

/// true/false, 1/0, yes/no, on/off, in any case.
bool parseBool(const Input& input);

/// One of `choices` (lower case), in any case; returned in lower case.
std::string parseChoice(const Input& input, std::initializer_list<std::string_view> choices,
                        std::string_view expected);

/// The text as given, unless it is empty.
std::string parseNonEmpty(const Input& input, std::string_view expected);

/// A DURATION as parseDuration reads it, named by its source.
Duration parseTimeout(const Input& input);

/// critical ... trace, in any case.
LogLevel parseLogLevel(const Input& input);

/// APP as module:attribute, both dotted Python names; fails when it is missing.
std::string parseApp(const std::optional<Input>& input);

/// NAME:VALUE (--header), as uvicorn splits it at the first colon, with the spaces around the
/// value dropped; the name must be an HTTP token and the value free of line breaks.
ResponseHeader parseHeader(const Input& input);

/// An octal mode from 000 to 777, with or without a "0o" prefix.
unsigned parseUmask(const Input& input);

}  // namespace corral
