# Install-time steps of deploy/CMakeLists.txt (run by `cmake --install`, which
# sets CMAKE_INSTALL_PREFIX to the --prefix given then; file(INSTALL) adds
# DESTDIR and records every file in install_manifest.txt).

# The unit names /usr/bin/cepheus; point it at this prefix's binary and docs.
file(READ "${CEPHEUS_SOURCE_DIR}/deploy/systemd/cepheus.service" unit)
string(REPLACE "/usr/bin/cepheus" "${CMAKE_INSTALL_PREFIX}/${CEPHEUS_BINDIR}/cepheus" unit "${unit}")
string(REPLACE "/usr/share/doc/cepheus" "${CMAKE_INSTALL_PREFIX}/${CEPHEUS_DOCDIR}" unit "${unit}")
file(WRITE "${CEPHEUS_STAGING_DIR}/cepheus.service" "${unit}")
file(INSTALL "${CEPHEUS_STAGING_DIR}/cepheus.service"
     DESTINATION "${CMAKE_INSTALL_PREFIX}/${CEPHEUS_SYSTEMD_UNITDIR}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The configuration and the rules are the operator's once installed: a first
# install puts the shipped ones in place, an upgrade leaves them alone (the
# shipped versions are always in share/cepheus to compare with).
set(confdir "$ENV{DESTDIR}${CEPHEUS_CONFDIR}")
if(EXISTS "${confdir}/cepheus.yaml")
  message(STATUS "Kept: ${CEPHEUS_CONFDIR}/cepheus.yaml (the shipped one is in share/cepheus)")
else()
  file(INSTALL "${CEPHEUS_SOURCE_DIR}/config/cepheus.yaml" DESTINATION "${CEPHEUS_CONFDIR}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
file(GLOB installed_rules "${confdir}/rules/*.rules")
if(installed_rules)
  message(STATUS "Kept: ${CEPHEUS_CONFDIR}/rules/ (the shipped rules are in share/cepheus/rules)")
else()
  file(GLOB shipped_rules "${CEPHEUS_SOURCE_DIR}/rules/*.rules")
  file(INSTALL ${shipped_rules} DESTINATION "${CEPHEUS_CONFDIR}/rules"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
