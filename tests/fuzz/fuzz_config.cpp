// libFuzzer target: the config parser (TOML text -> Config, schema checks). Any input must
// either give a Config or raise cmera::Error; anything else (another exception, a crash,
// a sanitizer report) is a bug. A Config that parses must also survive the round trip
// through to_toml() unchanged, which is what every output file records.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cmera/config.hpp"
#include "cmera/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  cmera::Config c;
  try {
    c = cmera::parse_config_text(text, "fuzz.toml", {});
  } catch (const cmera::Error&) {
    return 0;
  }
  if (!(cmera::parse_config_text(c.to_toml(), "round-trip.toml", {}) == c)) std::abort();
  return 0;
}
