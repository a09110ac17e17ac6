#pragma once

#include <string>

namespace corral {

/// Removes the bytecode CPython cached for the module at `source` (a .py file):
/// `__pycache__/NAME.*.pyc` beside it, for every interpreter and optimisation level. CPython
/// trusts a cached file whose recorded source mtime (whole seconds) and size match the source
/// (PEP 552's default, timestamp-based pycs), so an edit in the same second that keeps the size
/// ('site-1' -> 'site-2') would be served from the old bytecode after a reload. Errors (no
/// cache, no permission) are ignored: the cache is then only as stale as without corral.
void forgetBytecode(const std::string& source);

}  // namespace corral
