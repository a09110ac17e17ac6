#include "util/json.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <limits>
#include <string>

namespace corral {
namespace {

TEST_CASE("json::write escapes what JSON needs escaped", "[unit][json]") {
  CHECK(json::write(json::Value("plain")) == R"("plain")");
  CHECK(json::write(json::Value("a\"b\\c\n\t")) == R"("a\"b\\c\n\t")");
  CHECK(json::write(json::Value(std::string("\x01\x1f", 2))) == R"("\u0001\u001f")");
  CHECK(json::write(json::Value("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8e")) ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8e\"");
}

TEST_CASE("json::write numbers as people write them", "[unit][json]") {
  CHECK(json::write(json::Value(7.5)) == "7.5");
  CHECK(json::write(json::Value(0.25)) == "0.25");
  CHECK(json::write(json::Value(5.0)) == "5");
  CHECK(json::write(json::Value(-3)) == "-3");
  CHECK(json::write(json::Value(std::numeric_limits<std::uint64_t>::max())) ==
        "18446744073709551615");
  CHECK(json::write(json::Value(std::numeric_limits<double>::quiet_NaN())) == "null");
  CHECK(json::write(json::Value(std::numeric_limits<double>::infinity())) == "null");
}

TEST_CASE("json::write keeps insertion order and nests", "[unit][json]") {
  const json::Object object{
      {"b", 1}, {"a", json::Array{true, nullptr, "x"}}, {"c", json::Object{}}};
  CHECK(json::write(object) == R"({"b":1,"a":[true,null,"x"],"c":{}})");
}

TEST_CASE("json::validUtf8 replaces every malformed byte", "[unit][json]") {
  const std::string fffd = "\xef\xbf\xbd";
  const auto [input, expected] = GENERATE_COPY(table<std::string, std::string>({
      {"ok", "ok"},
      {"\xff", fffd},                                   // never valid
      {"\xc3", fffd},                                   // truncated sequence
      {"\xc3(", fffd + "("},                            // bad continuation
      {"\xc0\xaf", fffd + fffd},                        // overlong '/'
      {"\xe0\x80\xaf", fffd + fffd + fffd},             // overlong, three bytes
      {"\xed\xa0\x80", fffd + fffd + fffd},             // a UTF-16 surrogate
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},  // above U+10FFFF
      {"a\x80z", "a" + fffd + "z"},                     // a lone continuation byte
      {"\xf0\x9f\x90\x8e", "\xf0\x9f\x90\x8e"},         // U+1F40E, four bytes, valid
  }));
  CAPTURE(input);
  CHECK(json::validUtf8(input) == expected);
}

TEST_CASE("json::write output always parses, whatever bytes the strings hold", "[unit][json]") {
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  const json::Object object{{every_byte, every_byte}};
  const std::string text = json::write(object);
  const auto parsed = boost::json::parse(text).as_object();
  REQUIRE(parsed.size() == 1);
  CHECK(parsed.begin()->value().as_string() == json::validUtf8(every_byte));
}

}  // namespace
}  // namespace corral
