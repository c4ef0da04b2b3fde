# Writes the git hash of SOURCE_DIR's working tree (git describe --always --dirty) into
# OUTPUT from TEMPLATE. Run at every build (the cmera_git_hash target), not only at
# configure time, so a binary rebuilt after a pull or an edit names the source it was
# built from; configure_file rewrites OUTPUT only when the hash changed, so an unchanged
# tree recompiles nothing.
execute_process(COMMAND git -C "${SOURCE_DIR}" describe --always --dirty --abbrev=12
                OUTPUT_VARIABLE CMERA_GIT_HASH OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET)
if(NOT CMERA_GIT_HASH)
  set(CMERA_GIT_HASH "unknown")
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
