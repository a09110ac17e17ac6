#include "runtime/resident_memory.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace corral {
namespace {

// Abridged from a real /proc/PID/smaps of corral (the keys that do not matter left out).
constexpr std::string_view kSmaps =
    "55d0a0000000-55d0a0023000 r--p 00000000 fe:01 1234                       /usr/bin/corral\n"
    "Rss:                 140 kB\n"
    "Anonymous:             0 kB\n"
    "Swap:                  0 kB\n"
    "VmFlags: rd mr mw me dw sd\n"
    "55d0a0023000-55d0a01e9000 r-xp 00023000 fe:01 1234                       /usr/bin/corral\n"
    "Rss:                1752 kB\n"
    "Anonymous:             0 kB\n"
    "Swap:                  0 kB\n"
    "55d0a0282000-55d0a0291000 r--p 00282000 fe:01 1234                       /usr/bin/corral\n"
    "Rss:                  60 kB\n"
    "Anonymous:            60 kB\n"
    "Swap:                  0 kB\n"
    "55d0a0291000-55d0a0292000 rw-p 00291000 fe:01 1234                       /usr/bin/corral\n"
    "Anonymous:             4 kB\n"
    "55d0a0292000-55d0a0295000 rw-p 00000000 00:00 0 \n"
    "Anonymous:            12 kB\n"
    "55d0a1000000-55d0a1049000 rw-p 00000000 00:00 0                          [heap]\n"
    "Anonymous:           224 kB\n"
    "7f0000000000-7f0000010000 r--p 00000000 fe:01 99                         /usr/lib/libc.so.6\n"
    "Anonymous:             0 kB\n"
    "Swap:                  8 kB\n"
    "7f0000010000-7f0000020000 r-xp 00010000 fe:01 99                         /usr/lib/libc.so.6\n"
    "Anonymous:             0 kB\n"
    "7f0000030000-7f0000032000 r-xp 00000000 00:00 0                          [vdso]\n"
    "Anonymous:             0 kB\n"
    "7f0000040000-7f0000041000 r--p 00000000 fe:01 77                         /tmp/a b (deleted)\n"
    "Anonymous:             0 kB\n";

TEST_CASE("Only clean, read-only file mappings are dropped", "[unit][runtime]") {
  const auto ranges = rereadableMappings(kSmaps);
  // The binary's headers and text, libc's text and the deleted file; not the RELRO pages the
  // loader relocated, the writable data, the heap, libc's mapping with a swapped-out copy, or
  // [vdso].
  CHECK(ranges == std::vector<MappedRange>{{0x55d0a0000000, 0x55d0a0023000},
                                           {0x55d0a0023000, 0x55d0a01e9000},
                                           {0x7f0000010000, 0x7f0000020000},
                                           {0x7f0000040000, 0x7f0000041000}});
  CHECK(rereadableMappings("").empty());
  CHECK(rereadableMappings("garbage\nAnonymous: 3 kB\n").empty());
}

TEST_CASE("Releasing start-up pages leaves the process working", "[unit][runtime]") {
  std::string before = "text built before";
  const ReleasedPages released = releaseStartupPages();
  CHECK(released.before_kib > 0);
  CHECK(released.after_kib > 0);
  CHECK(released.after_kib <= released.before_kib + 64);  // the smaps text read meanwhile
  // The heap, the data and the code all still there.
  CHECK(before + "!" == "text built before!");
  CHECK(rereadableMappings(kSmaps).size() == 4);
}

}  // namespace
}  // namespace corral
