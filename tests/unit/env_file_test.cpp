// --env-file's dotenv format, read as python-dotenv reads it (tests/integration/test_reload.py
// also compares corral with python-dotenv itself on one file).

#include "config/env_file.hpp"

#include <catch2/catch.hpp>
#include <map>

namespace corral {
namespace {

std::vector<std::string> load(std::string_view text, std::map<std::string, std::string> env = {}) {
  const EnvLookup lookup = [env](const std::string& name) -> std::optional<std::string> {
    const auto found = env.find(name);
    if (found == env.end()) return std::nullopt;
    return found->second;
  };
  return expandEnvFile(parseEnvFile(text), lookup);
}

using Entries = std::vector<std::string>;

TEST_CASE("env file: plain assignments, export, comments and blank lines", "[unit][envfile]") {
  CHECK(load("A=1\n\n# a comment\nexport B=two\n  C = three  \nD=\n") ==
        Entries{"A=1", "B=two", "C=three", "D="});
  CHECK(load("A=1 # trailing comment\nB=x#not-a-comment\nC=a b  #c\n") ==
        Entries{"A=1", "B=x#not-a-comment", "C=a b"});
  CHECK(load("exported=1\nexport\tX=2\n") == Entries{"exported=1", "X=2"});
  CHECK(load("A=1\r\nB=2\rC=3") == Entries{"A=1", "B=2", "C=3"});
}

TEST_CASE("env file: quotes, escapes and values over several lines", "[unit][envfile]") {
  CHECK(load(R"(A='single # kept'  # comment)") == Entries{"A=single # kept"});
  CHECK(load(R"(A='it\'s \\ \n')") == Entries{R"(A=it's \ \n)"});
  CHECK(load(R"(A="tab\there \"quoted\" \\")") == Entries{"A=tab\there \"quoted\" \\"});
  CHECK(load("A=\"line one\nline two\"\nB=after") == Entries{"A=line one\nline two", "B=after"});
  CHECK(load(R"(A="x\y")") == Entries{R"(A=x\y)"});  // an unknown escape stays as written
  CHECK(load("'QUOTED KEY'=1") == Entries{"QUOTED KEY=1"});
  CHECK(load(R"(A='ends with backslash\')") == Entries{R"(A=ends with backslash\)"});
}

TEST_CASE("env file: a bare name sets nothing; the last assignment wins", "[unit][envfile]") {
  CHECK(load("A\nB=1\nB=2\n") == Entries{"B=2"});
  CHECK(load("A=1\nA\n") == Entries{});
}

TEST_CASE("env file: ${NAME} expands from the environment first, then the file",
          "[unit][envfile]") {
  CHECK(load("HOST=db\nURL=postgres://${HOST}:${PORT:-5432}/app\n") ==
        Entries{"HOST=db", "URL=postgres://db:5432/app"});
  CHECK(load("HOST=db\nURL=${HOST}\n", {{"HOST", "env-wins"}}) ==
        Entries{"HOST=db", "URL=env-wins"});
  CHECK(load("A=${MISSING}-${ALSO_MISSING:-d}\n") == Entries{"A=-d"});
  CHECK(load("A=${NOT:CLOSED\nB=$HOME ${X:y}\n") == Entries{"A=${NOT:CLOSED", "B=$HOME ${X:y}"});
  CHECK(load("A\nB=${A:-default}\n") == Entries{"B="});  // a bare name is set, to nothing
}

TEST_CASE("env file: a statement that cannot be read names its line", "[unit][envfile]") {
  CHECK_THROWS_WITH(parseEnvFile("A=1\n\nB=\"never closed\n"),
                    Catch::Contains("line 3") && Catch::Contains("never closed"));
  CHECK_THROWS_WITH(parseEnvFile("A='x' trailing\n"), Catch::Contains("line 1"));
  CHECK_THROWS_WITH(parseEnvFile("A=1\n=2\n"), Catch::Contains("line 2"));
  // No environment can hold such a name (found by tests/fuzz/fuzz_env_file.cpp).
  CHECK_THROWS_WITH(parseEnvFile("A=1\n'B=C'=2\n"), Catch::Contains("line 2"));
}

}  // namespace
}  // namespace corral
