# Installs packaging/systemd/'s units with ExecStart naming the corral this install puts in
# place (the units in the repository say /usr/local/bin/corral, where a copied binary goes).
# Run by `cmake --install` and by CPack, which set CMAKE_INSTALL_PREFIX and DESTDIR; the caller
# sets CORRAL_UNIT_SOURCES and CORRAL_UNIT_DIR (relative to the prefix).
set(unit_dir "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${CORRAL_UNIT_DIR}")
file(MAKE_DIRECTORY "${unit_dir}")
foreach(source IN LISTS CORRAL_UNIT_SOURCES)
  get_filename_component(name "${source}" NAME)
  file(READ "${source}" text)
  string(REPLACE "/usr/local/bin/corral" "${CMAKE_INSTALL_PREFIX}/bin/corral" text "${text}")
  message(STATUS "Installing: ${unit_dir}/${name}")
  file(WRITE "${unit_dir}/${name}" "${text}")
endforeach()
