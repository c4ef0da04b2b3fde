// libFuzzer target: the dataset validator, structure-aware. The input does not become the
// file's bytes: it chooses a dataset description (whether /configs exists, its dtype, rank,
// shape and values, the alphabet attribute's presence, type and value, whether the file
// carries an integrity block and whether the file is then truncated or one byte changed),
// which is written with plain HDF5 calls and opened with DatasetReader; a file that passes
// is read completely and its values checked by the statistics pass, as train does (unless
// its alphabet makes the counts large). Any input must end in success or cmera::Error.
// Trade-off: raw mutated bytes would mostly fuzz HDF5 1.10's own parser, which crashes or
// allocates gigabytes on some damaged metadata (README "Bad input"); cmera cannot guard a
// file it did not write, so this target spends its time on what cmera decides. Damaged
// bytes are fuzzed by fuzz_model, behind the integrity block.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/integrity.hpp"
#include "cmera/io.hpp"
#include "cmera/statistics.hpp"
#include "fuzz_common.hpp"

namespace {

hid_t element_type(int choice) {
  const hid_t types[] = {H5T_STD_U8LE, H5T_STD_I8LE,    H5T_STD_U16LE,   H5T_STD_I32LE,
                         H5T_STD_I64LE, H5T_IEEE_F32LE, H5T_IEEE_F64LE, H5T_STD_U32BE};
  return types[choice % 8];
}

void write_alphabet(FuzzedDataProvider& in, hid_t dset) {
  const int kind = in.ConsumeIntegralInRange(0, 5);  // 0: absent
  if (kind == 0) return;
  const hsize_t n = kind == 4 ? 3 : 1;
  const hid_t space = kind == 5 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
  const std::int64_t value = in.ConsumeIntegralInRange<std::int64_t>(-5, 300);
  const double real = static_cast<double>(value);
  const std::int64_t values[3] = {value, value, value};
  const char text[8] = "two";
  const hid_t type = kind == 2 ? H5T_IEEE_F64LE : kind == 3 ? H5Tcopy(H5T_C_S1) : H5T_STD_I64LE;
  if (kind == 3) H5Tset_size(type, sizeof text);
  const hid_t a = H5Acreate2(dset, "alphabet", type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (kind == 2) H5Awrite(a, H5T_NATIVE_DOUBLE, &real);
  else if (kind == 3) H5Awrite(a, type, text);
  else H5Awrite(a, H5T_NATIVE_INT64, values);
  H5Aclose(a);
  if (kind == 3) H5Tclose(type);
  H5Sclose(space);
}

// Writes the described file; false when HDF5 refuses the description itself.
bool write_file(FuzzedDataProvider& in, const std::string& path, bool block) {
  const hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (block) H5Pset_userblock(fcpl, cmera::kIntegrityBlockBytes);
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (f < 0) return false;
  const bool named_configs = in.ConsumeIntegralInRange(0, 9) != 9;
  const hid_t type = element_type(in.ConsumeIntegral<std::uint8_t>());
  const int rank = 2 + in.ConsumeIntegralInRange(-2, 2);  // 0..4, 2 most often
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  hsize_t elements = 1;
  for (auto& d : dims) {
    d = 1 + in.ConsumeIntegralInRange<hsize_t>(0, 40) + (&d == &dims.back() ? 15 : 0);
    if (in.ConsumeIntegralInRange(0, 15) == 15) d = 0;
    elements *= d;
  }
  bool ok = elements <= 8192;
  if (ok) {
    const hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr);
    const hid_t dset = H5Dcreate2(f, named_configs ? "configs" : "data", type, space, H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT);
    // Values: raw bytes of the element type, mostly small (inside a binary alphabet).
    const std::size_t bytes = static_cast<std::size_t>(elements) * H5Tget_size(type);
    std::vector<std::uint8_t> raw = in.ConsumeBytes<std::uint8_t>(bytes);
    const std::uint8_t mask = in.ConsumeBool() ? 0xff : 0x01;
    raw.resize(bytes, 0);
    for (auto& b : raw) b &= mask;
    ok = dset >= 0 && (elements == 0 || H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) >= 0);
    if (dset >= 0) {
      write_alphabet(in, dset);
      H5Dclose(dset);
    }
    H5Sclose(space);
  }
  H5Fclose(f);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  cmera_fuzz::init_mpi(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const cmera::Comm self(MPI_COMM_SELF);
  FuzzedDataProvider in(data, size);
  const std::string& path = cmera_fuzz::scratch_path();
  const bool block = in.ConsumeBool();
  const int damage = in.ConsumeIntegralInRange(0, 7);  // 6: truncate, 7: change one byte
  const std::size_t at = in.ConsumeIntegral<std::uint16_t>();
  if (!write_file(in, path, block)) return 0;
  if (block && !cmera::stamp_integrity(path).empty()) std::abort();
  const auto length = std::filesystem::file_size(path);
  if (damage == 6) std::filesystem::resize_file(path, at % length);
  if (damage == 7 && block) {  // a foreign file's damaged metadata is HDF5's business
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(at % length));
    file.put(static_cast<char>(at >> 8 | 1));
  }
  try {
    const cmera::DatasetReader reader(self, path);
    const cmera::DatasetShape& s = reader.shape();
    const long alphabet = s.alphabet >= 2 ? s.alphabet : 2;
    // The pass keeps alphabet^3 counts per window, as the model it trains does; a large
    // alphabet is a large model, not a robustness question, so it is only validated.
    if (alphabet * alphabet * alphabet * s.sites > (1L << 20)) return 0;
    cmera::count_window_stats(self, reader, static_cast<int>(alphabet), 0, s.sites, 64);
  } catch (const cmera::Error&) {
  }
  return 0;
}
