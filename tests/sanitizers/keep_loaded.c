/* Preloaded into every process of the sanitizer suite (scripts/sanitize.sh): dlclose does
 * nothing, so no shared object is ever unloaded. Open MPI opens every component of a
 * framework and closes the ones it does not select during MPI_Init (its
 * mca_base_component_disable_dlclose only covers the ones it keeps); what those leaked
 * is then reported from an "<unknown module>" that no suppression can name. Keeping
 * them mapped lets LeakSanitizer name the library with the fast, frame-pointer unwinder,
 * instead of unwinding every malloc through DWARF tables (fast_unwind_on_malloc=0),
 * which doubled the suite's time. Trade-off: a test process keeps libraries mapped that
 * it would have unmapped; cmera itself never calls dlopen or dlclose. */
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
