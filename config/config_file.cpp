#include "config/config_file.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "config/config_error.hpp"
#include "config/migration.hpp"
#include "config/toml_guard.hpp"

// toml++ from Debian's libtomlplusplus-dev, used header-only: corral links no library for it
// (Debian's pkg-config and CMake files would link libtomlplusplus.so). This is the one file
// that includes it.
#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 0
// toml++ 3.3.0 asserts in parse_key() that a table header's key starts with a key character,
// though a header such as `[&r]` gets there and its next lines report that very case as a parse
// error: with assert() enabled, a bad config file would abort corral (fuzz_config_file found
// it). Without the assert, toml++ reports the error, as it does in a build with NDEBUG and g++.
#define TOML_ASSERT(expr) static_cast<void>(0)
#include <toml++/toml.h>

namespace corral {
namespace {

constexpr std::uintmax_t kMaxFileBytes = 1 << 20;

// What a key's value may be, from its option's metavar: a flag takes true or false, a number
// may also be written as a string ("auto", "512Mi"), and so on.
enum class Expect { Flag, Count, Duration, Size, Mode, Name, Text };

Expect expectFor(std::string_view metavar) {
  if (metavar.empty()) return Expect::Flag;
  if (metavar == "N") return Expect::Count;
  if (metavar == "DURATION") return Expect::Duration;
  if (metavar == "SIZE") return Expect::Size;
  if (metavar == "MODE") return Expect::Mode;
  if (metavar == "USER" || metavar == "GROUP") return Expect::Name;
  return Expect::Text;
}

std::string describe(Expect expect, bool repeatable) {
  std::string out;
  switch (expect) {
    case Expect::Flag: out = "true or false"; break;
    case Expect::Count: out = "a whole number"; break;
    case Expect::Duration:
      out = "a duration: seconds (30, 0.5) or a string (\"500ms\", \"2m\")";
      break;
    case Expect::Size: out = "a size: bytes (1048576) or a string (\"512Mi\", \"1G\")"; break;
    case Expect::Mode: out = "an octal mode: a string (\"022\") or an octal number (0o022)"; break;
    case Expect::Name: out = "a name or a number"; break;
    case Expect::Text: out = "a string"; break;
  }
  if (repeatable) out += expect == Expect::Text ? " or an array of strings" : ", or an array";
  return out;
}

std::string_view typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string shortest(double value) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return ec == std::errc{} ? std::string(buffer.data(), end) : std::string("nan");
}

std::string octal(std::int64_t value) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, 8);
  return ec == std::errc{} ? std::string(buffer.data(), end) : std::string("?");
}

// The text the option's parser reads, or nullopt for a value of the wrong type.
std::optional<std::string> scalarText(const toml::node& node, Expect expect) {
  if (const auto* text = node.as_string()) {
    if (expect == Expect::Flag) return std::nullopt;
    return text->get();
  }
  if (const auto* flag = node.as_boolean()) {
    if (expect != Expect::Flag) return std::nullopt;
    return flag->get() ? "true" : "false";
  }
  if (const auto* number = node.as_integer()) {
    switch (expect) {
      case Expect::Count:
      case Expect::Duration:
      case Expect::Size:
      case Expect::Name: return std::to_string(number->get());
      // Only written as an octal number: umask = 22 would mean 0o26.
      case Expect::Mode:
        if ((number->flags() & toml::value_flags::format_as_octal) ==
            toml::value_flags::format_as_octal) {
          return octal(number->get());
        }
        return std::nullopt;
      case Expect::Flag:
      case Expect::Text: return std::nullopt;
    }
  }
  if (const auto* number = node.as_floating_point()) {
    if (expect == Expect::Duration) return shortest(number->get());
  }
  return std::nullopt;
}

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  std::map<std::string, std::vector<Input>, std::less<>> read(const toml::table& table) {
    std::map<std::string, std::vector<Input>, std::less<>> values;
    for (const auto& [key, node] : table) {
      const std::string name(key.str());
      const std::string where = at(key.source().begin.line);
      const auto [option, expect, repeatable] = resolve(name, where, node);
      std::string source = where;
      source.append(": ").append(name);
      values[option] = inputs(source, node, expect, repeatable, name);
    }
    return values;
  }

 private:
  struct Resolved {
    std::string option;
    Expect expect;
    bool repeatable;
  };

  std::string at(std::uint32_t line) const { return path_ + ":" + std::to_string(line); }

  Resolved resolve(const std::string& key, const std::string& where, const toml::node& node) {
    if (key == "app") return {"APP", Expect::Text, false};
    const OptionInfo* option = findOption("--" + key);
    if (option == nullptr || !option->in_file) {
      if (node.is_table()) {
        throw ConfigError(where + ": [" + printable(key) +
                          "]: corral's config file has no tables; write every key at the top");
      }
      std::string advice = adviceFor(key, Spelling::Key);
      if (option != nullptr) {
        advice = option->in_environment
                     ? "; " + option->name + " is set on the command line or as " +
                           envNameFor(option->name) + ", not in a config file"
                     : "; " + option->name + " is a command-line option only";
      } else if (advice.empty()) {
        advice = "; the keys are corral's long options without their dashes, and app";
      }
      throw ConfigError(where + ": unknown key '" + printable(key) + "'" + advice);
    }
    return {option->name, expectFor(option->metavar), option->repeatable};
  }

  [[noreturn]] void wrongType(const std::string& source, const toml::node& node, Expect expect,
                              bool repeatable) const {
    throw ConfigError(source + ": expected " + describe(expect, repeatable) + ", not " +
                      std::string(typeName(node)));
  }

  std::vector<Input> inputs(const std::string& source, const toml::node& node, Expect expect,
                            bool repeatable, const std::string& key) const {
    std::vector<Input> out;
    if (const auto* array = node.as_array(); array != nullptr && repeatable) {
      for (const toml::node& element : *array) {
        // Each element is named by its own line, since arrays often span several.
        const std::string element_source = at(element.source().begin.line) + ": " + key;
        auto text = scalarText(element, expect);
        if (!text) wrongType(element_source, element, expect, false);
        out.push_back({element_source, std::move(*text), Origin::File});
      }
      return out;
    }
    auto text = scalarText(node, expect);
    if (!text) wrongType(source, node, expect, repeatable);
    out.push_back({source, std::move(*text), Origin::File});
    return out;
  }

  const std::string& path_;
};

}  // namespace

ConfigFile ConfigFile::parse(std::string_view text, const std::string& path) {
  ConfigFile file;
  file.path_ = path;
  toml::table table;
  rejectWhatTomlMishandles(text, path);
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& error) {
    const auto& begin = error.source().begin;
    throw ConfigError(path + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) +
                      ": not valid TOML: " + std::string(error.description()));
  }
  file.values_ = Reader(file.path_).read(table);
  return file;
}

ConfigFile ConfigFile::load(const Input& input) {
  if (input.text.ends_with(".py")) {
    fail(input,
         "corral reads TOML, not a gunicorn.conf.py: write its settings as corral's "
         "keys (see the README, \"From gunicorn and uvicorn\")");
  }
  std::error_code error;
  const auto status = std::filesystem::status(input.text, error);
  if (error || !std::filesystem::exists(status)) {
    fail(input,
         error && error != std::errc::no_such_file_or_directory ? error.message() : "no such file");
  }
  if (std::filesystem::is_directory(status)) fail(input, "is a directory, not a file");
  // Not a pipe or a device, which could block or never end.
  if (!std::filesystem::is_regular_file(status)) fail(input, "is not a regular file");
  std::ifstream stream(input.text, std::ios::binary);
  if (!stream) fail(input, std::string("cannot be read: ") + std::strerror(errno));
  std::string text;
  std::array<char, 65536> buffer{};
  while (stream.read(buffer.data(), buffer.size()) || stream.gcount() > 0) {
    text.append(buffer.data(), static_cast<std::size_t>(stream.gcount()));
    if (text.size() > kMaxFileBytes) fail(input, "larger than 1 MiB: not a config file");
  }
  return parse(text, input.text);
}

const std::vector<Input>* ConfigFile::find(std::string_view name) const {
  const auto found = values_.find(name);
  return found == values_.end() ? nullptr : &found->second;
}

}  // namespace corral
