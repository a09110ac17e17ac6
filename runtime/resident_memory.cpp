#include "runtime/resident_memory.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <charconv>
#include <string>

#include "util/files.hpp"

namespace corral {
namespace {

std::string_view nextLine(std::string_view& text) {
  const auto end = text.find('\n');
  const std::string_view line = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  return line;
}

// Fields are separated by spaces, and in /proc/self/status by a tab too.
std::string_view nextField(std::string_view& line) {
  const auto start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(start);
  const auto end = line.find_first_of(" \t");
  const std::string_view field = line.substr(0, end);
  line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  return field;
}

bool parseHex(std::string_view text, std::uintptr_t& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  return error == std::errc() && end == text.data() + text.size();
}

// "Anonymous:     12 kB": the number, or -1 when it is not that key.
long kibOf(std::string_view line, std::string_view key) {
  if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') return -1;
  line.remove_prefix(key.size() + 1);
  const std::string_view number = nextField(line);
  long value = -1;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  return error == std::errc() && end == number.data() + number.size() ? value : -1;
}

std::size_t residentKib() {
  const std::string status = readFile("/proc/self/status").value_or("");
  std::string_view rest = status;
  while (!rest.empty()) {
    const long kib = kibOf(nextLine(rest), "VmRSS");
    if (kib >= 0) return static_cast<std::size_t>(kib);
  }
  return 0;
}

}  // namespace

std::vector<MappedRange> rereadableMappings(std::string_view smaps) {
  std::vector<MappedRange> ranges;
  bool candidate = false;
  bool has_own_pages = false;
  MappedRange current;
  const auto finish = [&] {
    if (candidate && !has_own_pages) ranges.push_back(current);
    candidate = false;
  };
  while (!smaps.empty()) {
    std::string_view line = nextLine(smaps);
    // A mapping's header: "begin-end perms offset dev inode [path]"; its keys follow it.
    const auto dash = line.find('-');
    const auto space = line.find(' ');
    MappedRange header;
    if (dash != std::string_view::npos && space != std::string_view::npos && dash < space &&
        parseHex(line.substr(0, dash), header.begin) &&
        parseHex(line.substr(dash + 1, space - dash - 1), header.end)) {
      finish();
      current = header;
      std::string_view rest = line.substr(space);
      const std::string_view perms = nextField(rest);
      nextField(rest);  // offset
      nextField(rest);  // device
      nextField(rest);  // inode
      const std::string_view path = nextField(rest);
      candidate = perms.size() == 4 && perms[1] != 'w' && path.starts_with('/');
      has_own_pages = false;
      continue;
    }
    if (kibOf(line, "Anonymous") > 0 || kibOf(line, "Swap") > 0) has_own_pages = true;
  }
  finish();
  return ranges;
}

ReleasedPages releaseStartupPages() {
  ReleasedPages released;
  released.before_kib = residentKib();
  {
    const std::string smaps = readFile("/proc/self/smaps").value_or("");
    for (const MappedRange& range : rereadableMappings(smaps)) {
      // Fails harmlessly on a locked mapping (mlockall), whose pages stay. The address is the
      // kernel's, from smaps, not one derived from a pointer.
      // NOLINTNEXTLINE(performance-no-int-to-ptr)
      ::madvise(reinterpret_cast<void*>(range.begin), range.end - range.begin, MADV_DONTNEED);
    }
  }
  // After the smaps text is freed, so that its pages go back too.
  ::malloc_trim(0);
  released.after_kib = residentKib();
  return released;
}

}  // namespace corral
