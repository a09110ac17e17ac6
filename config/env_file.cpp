#include "config/env_file.hpp"

#include <map>

#include "config/config_error.hpp"
#include "util/files.hpp"

namespace corral {
namespace {

bool isHorizontalSpace(char c) {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

bool isSpace(char c) {
  return isHorizontalSpace(c) || c == '\n' || c == '\r';
}

// A cursor over the file that counts lines as python-dotenv does (\r\n, \n and \r each end one).
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  bool done() const { return pos_ >= text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  int line() const { return line_; }
  std::string_view rest() const { return text_.substr(pos_); }

  void advance(std::size_t count) {
    for (std::size_t end = pos_ + count; pos_ < end; ++pos_) {
      if (text_[pos_] == '\n' && pos_ > 0 && text_[pos_ - 1] == '\r') continue;
      if (text_[pos_] == '\n' || text_[pos_] == '\r') ++line_;
    }
  }
  void skipWhile(bool (*pred)(char)) {
    std::size_t n = 0;
    while (pos_ + n < text_.size() && pred(text_[pos_ + n])) ++n;
    advance(n);
  }
  /// Past the end of the current line, line end included.
  void skipLine() {
    std::size_t n = 0;
    while (pos_ + n < text_.size() && text_[pos_ + n] != '\n' && text_[pos_ + n] != '\r') ++n;
    if (pos_ + n < text_.size()) ++n;
    advance(n);
  }
  std::string take(std::size_t count) {
    std::string out(text_.substr(pos_, count));
    advance(count);
    return out;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  int line_ = 1;
};

struct ParseFailure {
  std::string what;
};

// The length of a quoted value's content: up to the first quote not preceded by a backslash,
// else up to the last quote there is (python-dotenv's pattern, backtracking included).
std::size_t quotedLength(std::string_view rest, char quote) {
  std::size_t last = std::string_view::npos;
  for (std::size_t i = 1; i < rest.size(); ++i) {
    if (rest[i] != quote) continue;
    if (rest[i - 1] != '\\') return i - 1;
    last = i - 1;
  }
  if (last == std::string_view::npos) {
    throw ParseFailure{std::string("a value opened with ") + quote + " is never closed"};
  }
  return last;
}

std::string decodeEscapes(std::string_view raw, std::string_view escapable) {
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size() || escapable.find(raw[i + 1]) == std::string::npos) {
      out += raw[i];
      continue;
    }
    switch (const char c = raw[++i]) {
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      default: out += c;
    }
  }
  return out;
}

std::string unquotedValue(Reader& reader) {
  std::string value;
  while (!reader.done() && reader.peek() != '\n' && reader.peek() != '\r') value += reader.take(1);
  // A comment starts at the first run of spaces followed by '#'.
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!isSpace(value[i])) continue;
    std::size_t j = i;
    while (j < value.size() && isSpace(value[j])) ++j;
    if (j < value.size() && value[j] == '#') {
      value.erase(i);
      break;
    }
    i = j - 1;
  }
  while (!value.empty() && isSpace(value.back())) value.pop_back();
  return value;
}

std::string parseValue(Reader& reader) {
  const char quote = reader.peek();
  if (quote == '\'' || quote == '"') {
    const std::size_t length = quotedLength(reader.rest(), quote);
    reader.advance(1);
    const std::string raw = reader.take(length);
    reader.advance(1);
    return quote == '\'' ? decodeEscapes(raw, "\\'") : decodeEscapes(raw, "\\'\"abfnrtv");
  }
  if (reader.done() || quote == '\n' || quote == '\r') return "";
  return unquotedValue(reader);
}

std::optional<std::string> parseKey(Reader& reader) {
  if (reader.peek() == '#') return std::nullopt;
  if (reader.peek() == '\'') {
    const auto rest = reader.rest();
    const auto close = rest.find('\'', 1);
    if (close == std::string_view::npos || close == 1) throw ParseFailure{"a bad quoted name"};
    if (rest.substr(1, close - 1).find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      throw ParseFailure{"a name cannot hold '=' or a NUL byte"};
    }
    reader.advance(1);
    std::string key = reader.take(close - 1);
    reader.advance(1);
    return key;
  }
  std::size_t n = 0;
  const auto rest = reader.rest();
  while (n < rest.size() && rest[n] != '=' && rest[n] != '#' && !isSpace(rest[n])) ++n;
  if (n == 0) throw ParseFailure{"expected NAME=value"};
  return reader.take(n);
}

// One statement; nullopt for a comment or a blank end.
std::optional<EnvAssignment> parseStatement(Reader& reader) {
  constexpr std::string_view kExport = "export";
  const auto rest = reader.rest();
  if (rest.starts_with(kExport) && rest.size() > kExport.size() &&
      isHorizontalSpace(rest[kExport.size()])) {
    reader.advance(kExport.size());
    reader.skipWhile(isHorizontalSpace);
  }
  const auto key = parseKey(reader);
  reader.skipWhile(isHorizontalSpace);
  std::optional<std::string> value;
  if (reader.peek() == '=') {
    reader.advance(1);
    reader.skipWhile(isHorizontalSpace);
    value = parseValue(reader);
  }
  reader.skipWhile(isHorizontalSpace);
  if (reader.peek() == '#') {
    while (!reader.done() && reader.peek() != '\n' && reader.peek() != '\r') reader.advance(1);
  }
  if (!reader.done() && reader.peek() != '\n' && reader.peek() != '\r') {
    throw ParseFailure{key ? "unexpected text after the value of " + *key
                           : "unexpected text after a comment"};
  }
  reader.skipLine();
  if (!key) return std::nullopt;
  return EnvAssignment{*key, std::move(value)};
}

// What the file assigned so far; nullopt for a bare `NAME`, which expands to nothing.
using Assigned = std::map<std::string, std::optional<std::string>, std::less<>>;

// ${NAME} and ${NAME:-default}, python-dotenv's POSIX-style expansion.
std::string expand(std::string_view value, const Assigned& earlier, const EnvLookup& environment) {
  std::string out;
  std::size_t i = 0;
  while (i < value.size()) {
    const auto start = value.find("${", i);
    const auto end = start == std::string_view::npos ? start : value.find('}', start);
    if (end == std::string_view::npos) break;
    const std::string_view inner = value.substr(start + 2, end - start - 2);
    const auto colon = inner.find(':');
    // A ':' that does not start ":-" makes it no reference at all, as in python-dotenv.
    if (colon != std::string_view::npos && inner.substr(colon, 2) != ":-") {
      out += value.substr(i, start + 2 - i);
      i = start + 2;
      continue;
    }
    const std::string name(inner.substr(0, colon));
    std::string replacement;
    if (const auto set = environment(name)) {
      replacement = *set;
    } else if (const auto found = earlier.find(name); found != earlier.end()) {
      replacement = found->second.value_or("");
    } else if (colon != std::string_view::npos) {
      replacement = inner.substr(colon + 2);
    }
    out += value.substr(i, start - i);
    out += replacement;
    i = end + 1;
  }
  if (i < value.size()) out += value.substr(i);
  return out;
}

}  // namespace

EnvFileError::EnvFileError(int line_number, const std::string& what)
    : std::runtime_error("line " + std::to_string(line_number) + ": " + what), line(line_number) {
}

std::vector<EnvAssignment> parseEnvFile(std::string_view text) {
  std::vector<EnvAssignment> out;
  Reader reader(text);
  for (;;) {
    reader.skipWhile(isSpace);
    if (reader.done()) break;
    const int line = reader.line();
    try {
      if (auto assignment = parseStatement(reader)) out.push_back(std::move(*assignment));
    } catch (const ParseFailure& failure) {
      throw EnvFileError(line, failure.what);
    }
  }
  return out;
}

std::vector<std::string> expandEnvFile(const std::vector<EnvAssignment>& assignments,
                                       const EnvLookup& environment) {
  Assigned assigned;
  std::vector<std::string> order;  // first assignment first, as python-dotenv's dict keeps them
  for (const auto& [name, value] : assignments) {
    if (!assigned.contains(name)) order.push_back(name);
    assigned[name] = value ? std::optional(expand(*value, assigned, environment)) : std::nullopt;
  }
  std::vector<std::string> entries;
  for (const auto& name : order) {
    if (const auto& value = assigned[name]) entries.push_back(name + "=" + *value);
  }
  return entries;
}

std::vector<std::string> loadEnvFile(const std::string& path, const EnvLookup& environment) {
  const auto text = readFile(path);
  if (!text) throw ConfigError("--env-file '" + printable(path) + "': cannot be read");
  try {
    return expandEnvFile(parseEnvFile(*text), environment);
  } catch (const EnvFileError& error) {
    throw ConfigError("--env-file '" + printable(path) + "' " + error.what() +
                      "; write NAME=value, with quotes around a value that holds spaces and #");
  }
}

}  // namespace corral
