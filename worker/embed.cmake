# Turns worker/shim.py into a C++ translation unit holding its text.
file(READ ${INPUT} SHIM_TEXT)
string(FIND "${SHIM_TEXT}" ")shim\"" CLASH)
if(NOT CLASH EQUAL -1)
  message(FATAL_ERROR "worker/shim.py contains the raw-string delimiter )shim\"")
endif()
file(WRITE ${OUTPUT}.tmp "// Generated from worker/shim.py by worker/embed.cmake. Do not edit.\n"
  "#include \"worker/shim.hpp\"\n\n"
  "namespace corral {\n"
  "const std::string_view kWorkerShim = R\"shim(${SHIM_TEXT})shim\";\n"
  "}  // namespace corral\n")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
