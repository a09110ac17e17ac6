#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace corral {

/// An address range of this process's memory, [begin, end).
struct MappedRange {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;

  bool operator==(const MappedRange&) const = default;
};

/// The mappings of `smaps` (proc_pid_smaps(5)'s text) whose resident pages can be dropped and
/// read back from their file unchanged: file-backed, not writable, and with no page of their
/// own (Anonymous and Swap 0). That leaves out the RELRO pages the dynamic loader relocated
/// (read-only, but copies), the heap, the stack, [vdso] and [vvar].
std::vector<MappedRange> rereadableMappings(std::string_view smaps);

/// What releaseStartupPages did: the resident set (VmRSS) before and after, in KiB.
struct ReleasedPages {
  std::size_t before_kib = 0;
  std::size_t after_kib = 0;
};

/// Gives back the pages that starting up touched and the steady state does not need: freed heap
/// (malloc_trim) and the clean pages of the binary and the shared libraries, which are unmapped
/// from this process only (MADV_DONTNEED) and stay in the page cache, so that code the loop
/// runs again comes back with a minor fault. Parsing the command line, the config file and
/// starting the workers run code (CLI11, toml++, iostreams' locale set-up) that corral needs
/// once; the kernel maps file pages in 64 KiB runs around each one touched, so without this
/// nearly the whole binary and libc stay resident.
ReleasedPages releaseStartupPages();

}  // namespace corral
