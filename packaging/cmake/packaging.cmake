# How corral is shipped (issue 10): `cmake --install`, the man page, the Python wheel
# (`--target wheel`) and the .deb (`cpack -G DEB` in the build folder).

# The newest glibc symbol version the portable binary needs: `objdump -T build/corral`, checked
# by tests/integration/test_packaging.py. It decides the wheel's manylinux tag and the .deb's
# libc6 dependency; glibc 2.35 is Ubuntu 22.04's, so bookworm (2.36) and newer qualify.
set(CORRAL_GLIBC_MIN 2.35 CACHE STRING "Oldest glibc the corral binary runs on")

install(TARGETS corral RUNTIME DESTINATION bin)
install(FILES README.md DESTINATION share/doc/corral)
install(FILES packaging/systemd/corral@.env.example DESTINATION share/doc/corral/examples)
# The example app, outside share/doc: slim images drop /usr/share/doc (dpkg path-exclude).
install(FILES examples/__init__.py examples/app.py DESTINATION share/corral/examples)

file(GLOB corral_units CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/packaging/systemd/*.service
     ${CMAKE_SOURCE_DIR}/packaging/systemd/*.socket)
install(CODE "set(CORRAL_UNIT_SOURCES \"${corral_units}\")\nset(CORRAL_UNIT_DIR lib/systemd/system)")
install(SCRIPT ${CMAKE_SOURCE_DIR}/packaging/cmake/install_units.cmake)

# corral(1), from `corral --help` and `--version`; the units' Documentation= points at it.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  add_custom_command(
    OUTPUT ${CMAKE_BINARY_DIR}/corral.1.gz
    COMMAND ${HELP2MAN} --no-info --section 1
            --name "supervisor and launcher for uvicorn ASGI workers"
            --output ${CMAKE_BINARY_DIR}/corral.1 $<TARGET_FILE:corral>
    COMMAND gzip -9nf ${CMAKE_BINARY_DIR}/corral.1
    DEPENDS corral
    COMMENT "Writing the man page corral.1 with help2man")
  add_custom_target(man ALL DEPENDS ${CMAKE_BINARY_DIR}/corral.1.gz)
  install(FILES ${CMAKE_BINARY_DIR}/corral.1.gz DESTINATION share/man/man1)
else()
  message(WARNING "corral: help2man not found, so no man page is built or installed; "
                  "apt-get install help2man")
endif()

# The wheel, into build/dist/: the binary as the wheel's script (it lands in a virtualenv's
# bin/, as ruff's and uv's do) and a `corral` package for `python -m corral`.
set(CORRAL_WHEEL_PYTHON /usr/bin/python3 CACHE FILEPATH "Interpreter with the wheel package")
add_custom_target(wheel
  COMMAND ${CORRAL_WHEEL_PYTHON} ${CMAKE_SOURCE_DIR}/packaging/wheel/build_wheel.py
          --binary $<TARGET_FILE:corral> --version ${PROJECT_VERSION}
          --glibc ${CORRAL_GLIBC_MIN} --readme ${CMAKE_SOURCE_DIR}/README.md
          --out ${CMAKE_BINARY_DIR}/dist
  DEPENDS corral
  COMMENT "Building the corral wheel into ${CMAKE_BINARY_DIR}/dist")

# The .deb. Only the portable build needs nothing but libc6; another one needs spdlog and fmt.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME corral)
set(CPACK_PACKAGE_CONTACT "corral maintainers")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "python3-uvicorn")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "supervisor and launcher for uvicorn ASGI workers
corral runs an ASGI app (FastAPI, Starlette) in a pool of uvicorn workers,
as gunicorn -k uvicorn.workers.UvicornWorker does: it binds the sockets,
restarts workers that die or hang, rolls them on SIGHUP and drains them on
SIGTERM. It is a complete container ENTRYPOINT (PID 1: signals, orphans),
a systemd Type=notify service (units included) and a local dev runner.
The workers need a Python interpreter with uvicorn.")
if(CORRAL_PORTABLE)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6 (>= ${CORRAL_GLIBC_MIN})")
else()
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
include(CPack)
