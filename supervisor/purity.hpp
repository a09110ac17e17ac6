// Forced into every file of the corral_supervisor target (CMakeLists.txt): the state machine is
// pure logic, and reaches time, processes and the world only through Clock, ProcessSpawner and
// Hooks, so that unit tests drive all of it. An Asio name anywhere in a file of the target, or
// in a header it includes, fails the build; tests/lint/purity.sh keeps system calls out.
#pragma once

#pragma GCC poison asio
