// HDF5 I/O at the current rank count: datasets written in per-rank row blocks and read
// back in cyclic column slabs (wrapped and empty included), model files round-tripped
// bit-exactly with each rank contributing only the entries it owns, and malformed inputs
// refused with the same cmera::Error on every rank. Malformed files are made with plain
// serial HDF5 on rank 0, the way a user's own tool would make them.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <string>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/error.hpp"
#include "cmera/integrity.hpp"
#include "cmera/io.hpp"
#include "cmera/provenance.hpp"
#include "hdf5_attrs.hpp"
#include "scratch_dir.hpp"

namespace cmera {
namespace {

namespace fs = std::filesystem;

class IoTest : public ::testing::Test {
 protected:
  std::string file(const std::string& name) const { return scratch.file(name); }

  // Rank 0 writes an HDF5 file holding one dataset `name` of `type` and shape `dims`, all
  // zeros (written: a never-written dataset is refused as unfinished).
  void make_raw(const std::string& path, const char* name, hid_t type,
                std::vector<hsize_t> dims) const {
    if (comm.is_root()) {
      const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      const hid_t s = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
      const hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      const std::vector<double> zeros(static_cast<std::size_t>(H5Sget_simple_extent_npoints(s)));
      if (!zeros.empty()) H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros.data());
      H5Dclose(d);
      H5Sclose(s);
      H5Fclose(f);
    }
    comm.barrier();
  }

  Comm comm;
  cmera::testing::ScratchDir scratch{comm, "io"};
};

// Distinct across the sites of a row (a modulus of 3 would make every site of a sample
// equal and hide column mix-ups); the alphabet attribute is just metadata here.
std::uint8_t value_at(long sample, long site) {
  return static_cast<std::uint8_t>((sample * 7 + site * 3) % 251);
}

// f() must throw cmera::Error on this rank (and so, by Comm::check, on all ranks) with a
// message naming `path` and containing `fragment`.
template <class F>
void expect_error(F&& f, const std::string& path, const std::string& fragment,
                  int code = kExitUsage) {
  try {
    f();
    ADD_FAILURE() << "no cmera::Error for " << path;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
    EXPECT_EQ(e.code(), code) << what;
  }
}

// Root string attribute read with serial HDF5 (the file must not be open elsewhere).
std::string root_string_attr(const std::string& path, const char* name) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const std::string s = fixed_string_attr(f, name);
  H5Fclose(f);
  return s;
}

TEST_F(IoTest, DatasetRoundTripCyclicSlabs_mpi) {
  const long S = 23, N = 11;
  const BlockPartition rows{S, comm.size()};
  const long first = rows.begin(comm.rank()), mine = rows.count(comm.rank());
  std::vector<std::uint8_t> data(static_cast<std::size_t>(mine * N));
  for (long k = 0; k < mine; ++k)
    for (long i = 0; i < N; ++i) data[k * N + i] = value_at(first + k, i);
  const std::string path = file("data.h5");
  write_dataset(comm, path, S, N, 251, first, data, {{"source", "unit test"}});

  {
    DatasetReader reader(comm, path);
    EXPECT_EQ(reader.shape().samples, S);
    EXPECT_EQ(reader.shape().sites, N);
    EXPECT_EQ(reader.shape().alphabet, 251);
    EXPECT_EQ(reader.path(), path);

    // Every rank reads a different slab in the same collective call.
    const int r = comm.rank();
    std::vector<CyclicRange> ranges = {
        CyclicRange::make(0, N, N),              // full
        CyclicRange::make(2 + r, 5, N),          // plain, wraps on higher ranks
        CyclicRange::make(8 + 3 * r, 6, N),      // wrapped
        CyclicRange::make(-2, 4, N),             // wrapped through a negative start
        CyclicRange::make(r, 0, N),              // empty everywhere
        r % 2 ? CyclicRange{} : CyclicRange::make(r, 3, N),  // empty on odd ranks only
        CyclicRange{3, N, N},                    // full, but starting mid-ring
        CyclicRange::make(10, 1, N),             // single last column
    };
    const std::vector<std::pair<long, long>> windows = {{0, S}, {3, 10}, {22, 1}, {5, 0}};
    for (const auto& cols : ranges)
      for (const auto& [s0, count] : windows) {
        std::vector<std::uint8_t> out(7, 99);  // stale contents must be replaced
        reader.read(s0, count, cols, out);
        // Non-fatal checks only: a rank leaving the test early would hang the others.
        EXPECT_EQ(out.size(), static_cast<std::size_t>(count * cols.length));
        if (out.size() != static_cast<std::size_t>(count * cols.length)) continue;
        long wrong = 0;
        for (long k = 0; k < count; ++k)
          for (long c = 0; c < cols.length; ++c)
            wrong += out[k * cols.length + c] != value_at(s0 + k, cols.at(c));
        EXPECT_EQ(wrong, 0) << "samples [" << s0 << ", " << s0 + count << ") range start "
                            << cols.start << " length " << cols.length;
      }
  }
  comm.barrier();
  if (comm.is_root()) {
    EXPECT_EQ(root_string_attr(path, "cmera_kind"), "dataset");
    EXPECT_EQ(root_string_attr(path, "source"), "unit test");
    for (const auto& entry : fs::directory_iterator(scratch.path()))
      EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
  }
  comm.barrier();
}

TEST_F(IoTest, ForeignDatasetWithoutAlphabetReads_mpi) {
  const std::string path = file("plain.h5");
  make_raw(path, "configs", H5T_STD_U8LE, {3, 4});
  DatasetReader reader(comm, path);
  EXPECT_EQ(reader.shape().samples, 3);
  EXPECT_EQ(reader.shape().sites, 4);
  EXPECT_EQ(reader.shape().alphabet, 0);
  std::vector<std::uint8_t> out;
  reader.read(0, 3, CyclicRange::make(comm.rank(), 2, 4), out);
  EXPECT_EQ(out, std::vector<std::uint8_t>(6, 0));
}

TEST_F(IoTest, BadDatasetsAreRefusedOnEveryRank_mpi) {
  const auto open = [this](const std::string& p) {
    return [this, p] { DatasetReader r(comm, p); };
  };

  const std::string missing = file("missing.h5");
  expect_error(open(missing), missing, "no such file");

  const std::string text = file("text.h5");
  if (comm.is_root()) std::ofstream(text) << "samples,sites\n1,2\n";
  comm.barrier();
  expect_error(open(text), text, "not an HDF5 file");

  const std::string no_configs = file("no-configs.h5");
  make_raw(no_configs, "other", H5T_STD_U8LE, {3, 4});
  expect_error(open(no_configs), no_configs, "no /configs");

  const std::string floats = file("float.h5");
  make_raw(floats, "configs", H5T_IEEE_F64LE, {4, 5});
  expect_error(open(floats), floats, "float64 [4, 5] (rank 2), expected uint8 [samples, sites]");

  const std::string signed8 = file("int8.h5");
  make_raw(signed8, "configs", H5T_STD_I8LE, {4, 5});
  expect_error(open(signed8), signed8, "int8 [4, 5]");

  const std::string rank3 = file("rank3.h5");
  make_raw(rank3, "configs", H5T_STD_U8LE, {2, 3, 4});
  expect_error(open(rank3), rank3, "uint8 [2, 3, 4], a grid dataset [S, Ly, Lx]; a chain model reads [samples, sites]");

  const std::string empty = file("empty.h5");
  make_raw(empty, "configs", H5T_STD_U8LE, {0, 5});
  expect_error(open(empty), empty, "zero samples");

  expect_error([&] { read_model(comm, floats); }, floats, "not a cmera model file");
}

TEST_F(IoTest, FailedWriteLeavesExistingFileAlone_mpi) {
  const long N = 5;
  const BlockPartition rows{4, comm.size()};
  const long first = rows.begin(comm.rank()), mine = rows.count(comm.rank());
  std::vector<std::uint8_t> data(static_cast<std::size_t>(mine * N));
  for (long k = 0; k < mine; ++k)
    for (long i = 0; i < N; ++i) data[k * N + i] = value_at(first + k, i);
  const std::string path = file("keep.h5");
  write_dataset(comm, path, 4, N, 3, first, data, {});

  // Rows that do not fit the declared shape are refused before anything is written.
  std::vector<std::uint8_t> ragged = data;
  if (comm.is_root()) ragged.push_back(1);
  expect_error([&] { write_dataset(comm, path, 4, N, 3, first, ragged, {}); }, path,
               "do not fit", kExitWrite);

  // A failure after the temporary file is complete (the final name is a directory).
  const std::string occupied = file("occupied");
  if (comm.is_root()) {
    fs::create_directories(occupied);
    std::ofstream(occupied + "/x") << "x";
  }
  comm.barrier();
  expect_error([&] { write_dataset(comm, occupied, 4, N, 3, first, data, {}); }, occupied,
               "cannot rename", kExitWrite);

  const std::string nowhere = file("no/such/dir/data.h5");
  expect_error([&] { write_dataset(comm, nowhere, 4, N, 3, first, data, {}); }, nowhere,
               "cannot create", kExitWrite);

  comm.barrier();
  if (comm.is_root()) {
    EXPECT_TRUE(fs::is_regular_file(occupied + "/x"));
    for (const auto& entry : fs::directory_iterator(scratch.path()))
      EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos)
          << entry.path();
  }
  DatasetReader reader(comm, path);
  std::vector<std::uint8_t> out;
  reader.read(0, 4, CyclicRange::make(0, N, N), out);
  for (long s = 0; s < 4; ++s)
    for (long i = 0; i < N; ++i) EXPECT_EQ(out[s * N + i], value_at(s, i));
}

// A model whose every entry is distinct; entries this rank does not write (non-owned
// untied slots; tied tables and top off rank 0) hold garbage, so the round trip also
// checks that each entry comes from the rank that owns it.
Model distinct_model(const Comm& comm, bool tied, bool garbage) {
  Model m = Model::uniform(Geometry{24, {2, 3, 2, 2}}, tied);
  const double junk = -1.0 - comm.rank();
  for (std::size_t l = 0; l < m.tables.layers.size(); ++l) {
    LayerTables& t = m.tables.layers[l];
    const BlockPartition part{t.count(), comm.size()};
    for (long j = 0; j < t.count(); ++j) {
      const bool mine = tied ? comm.is_root() : part.owner(j) == comm.rank();
      for (std::size_t i = 0; i < t.w_size(); ++i)
        t.W[j * t.w_size() + i] = garbage && !mine ? junk : 1e5 * l + 1e3 * j + i + 0.25;
      for (std::size_t i = 0; i < t.u_size(); ++i)
        t.U[j * t.u_size() + i] = garbage && !mine ? junk : 5e6 + 1e5 * l + 1e3 * j + i + 0.5;
    }
  }
  for (std::size_t i = 0; i < m.tables.top.size(); ++i)
    m.tables.top[i] = garbage && !comm.is_root() ? junk : std::ldexp(1.0, -static_cast<int>(i)) + 9;
  return m;
}

void model_round_trip(const Comm& comm, const std::string& path, bool tied) {
  ModelFileContents c;
  c.model = distinct_model(comm, tied, true);
  if (comm.is_root()) {
    c.config_toml = "[model]\nchi = [2, 3, 2, 2]\n";
    if (!tied) c.objective_history = {1.5, -2.25, 1e-300};
    if (!tied) c.kl_history = {0.125};
  }
  c.provenance = provenance("cmera test", "p = 1");
  c.provenance.emplace_back("extra", "\xc3\xbc and a long value " + std::string(30000, 'x'));
  write_model(comm, path, c);

  const ModelFileContents r = read_model(comm, path);
  const Model expected = distinct_model(comm, tied, false);
  EXPECT_EQ(r.model.geometry.sites, 24);
  EXPECT_EQ(r.model.geometry.chi, (std::vector<int>{2, 3, 2, 2}));
  EXPECT_EQ(r.model.tied, tied);
  const std::size_t depth = std::min(r.model.tables.layers.size(), expected.tables.layers.size());
  EXPECT_EQ(r.model.tables.layers.size(), expected.tables.layers.size());
  for (std::size_t l = 0; l < depth; ++l) {
    const LayerTables& a = r.model.tables.layers[l];
    const LayerTables& b = expected.tables.layers[l];
    EXPECT_EQ(a.tied, tied);
    EXPECT_EQ(a.coarse, b.coarse);
    EXPECT_EQ(a.W, b.W) << "layer " << l;
    EXPECT_EQ(a.U, b.U) << "layer " << l;
  }
  EXPECT_EQ(r.model.tables.top, expected.tables.top);
  EXPECT_EQ(r.config_toml, "[model]\nchi = [2, 3, 2, 2]\n");
  const std::vector<double> objective = {1.5, -2.25, 1e-300}, kl = {0.125};
  EXPECT_EQ(r.objective_history, tied ? std::vector<double>() : objective);
  EXPECT_EQ(r.kl_history, tied ? std::vector<double>() : kl);

  auto find = [&](const std::string& key) -> std::string {
    for (const auto& [k, v] : r.provenance)
      if (k == key) return v;
    return "<absent>";
  };
  EXPECT_EQ(find("command"), "cmera test");
  EXPECT_EQ(find("parameters"), "p = 1");
  // Only the known provenance keys are read back: iterating an untrusted file's
  // attributes can crash HDF5 1.10 (tests/fuzz/corpus_model/regression-*), so unknown ones are skipped.
  EXPECT_EQ(find("extra"), "<absent>");
  EXPECT_EQ(find("cmera_kind"), "<absent>");
  EXPECT_NE(find("hdf5_version"), "<absent>");
  // Every rank sees rank 0's provenance, host and time included.
  std::string host = find("host"), created = find("created_utc");
  comm.broadcast(host);
  comm.broadcast(created);
  EXPECT_EQ(find("host"), host);
  EXPECT_EQ(find("created_utc"), created);
}

TEST_F(IoTest, UntiedModelRoundTrip_mpi) { model_round_trip(comm, file("untied.h5"), false); }

TEST_F(IoTest, TiedModelRoundTrip_mpi) { model_round_trip(comm, file("tied.h5"), true); }

TEST_F(IoTest, BadModelsAreRefusedOnEveryRank_mpi) {
  ModelFileContents c;
  c.model = distinct_model(comm, false, false);
  const std::string good = file("model.h5");
  write_model(comm, good, c);

  expect_error([&] { DatasetReader r(comm, good); }, good, "no /configs");

  const std::string data = file("data.h5");
  write_dataset(comm, data, comm.size(), 3, 2, comm.rank(), std::vector<std::uint8_t>(3, 1), {});
  expect_error([&] { read_model(comm, data); }, data, "is a cmera dataset file, expected a model");

  // Rank 0 rewrites root attribute `name` of a fresh copy of the model.
  const auto altered = [&](const std::string& name, const char* attr, auto&& rewrite) {
    const std::string path = file(name);
    write_model(comm, path, c);
    if (comm.is_root()) {
      const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      H5Adelete(f, attr);
      rewrite(f);
      H5Fclose(f);
      EXPECT_EQ(stamp_integrity(path), "");  // as another cmera version would have written it
    }
    comm.barrier();
    return path;
  };
  // Later format version.
  const std::string future = altered("future.h5", "format_version", [](hid_t f) {
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "format_version", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT);
    const int three = 3;
    H5Awrite(a, H5T_NATIVE_INT, &three);
    H5Aclose(a);
    H5Sclose(s);
  });
  expect_error([&] { read_model(comm, future); }, future,
               "model format version 3, this cmera reads 2");

  // A variable-length cmera_kind (as h5py writes str) is refused without being read.
  const std::string vlen = altered("vlen.h5", "cmera_kind", [](hid_t f) {
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "cmera_kind", t, s, H5P_DEFAULT, H5P_DEFAULT);
    const char* model = "model";
    H5Awrite(a, t, &model);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
  });
  expect_error([&] { read_model(comm, vlen); }, vlen,
               "attribute cmera_kind is a variable-length string");

  // A table whose shape disagrees with the stored chi.
  const std::string bent = file("bent.h5");
  write_model(comm, bent, c);
  if (comm.is_root()) {
    const hid_t f = H5Fopen(bent.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/model/layer_1/isometry", H5P_DEFAULT);
    const hsize_t dims[4] = {6, 2, 2, 2};
    const hid_t s = H5Screate_simple(4, dims, nullptr);
    H5Dclose(H5Dcreate2(f, "/model/layer_1/isometry", H5T_IEEE_F64LE, s, H5P_DEFAULT,
                        H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(s);
    H5Fclose(f);
    EXPECT_EQ(stamp_integrity(bent), "");
  }
  comm.barrier();
  expect_error([&] { read_model(comm, bent); }, bent,
               "/model/layer_1/isometry is float64 [6, 2, 2, 2], expected float64 [6, 2, 3, 3]");
}

// The integrity block, checked against an independent reading of the file: the length
// and zlib's CRC-32 of every byte after the block; a truncated copy, a changed byte and a
// file without a block are refused before HDF5 reads them.
TEST_F(IoTest, IntegrityBlockGuardsModelReads_mpi) {
  ModelFileContents c;
  c.model = distinct_model(comm, true, false);
  const std::string good = file("stamped.h5");
  write_model(comm, good, c);
  const auto bytes_of = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string bytes = bytes_of(good);
  ASSERT_GT(bytes.size(), kIntegrityBlockBytes);
  const unsigned long crc =
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()) + kIntegrityBlockBytes,
              bytes.size() - kIntegrityBlockBytes);
  EXPECT_EQ(bytes.substr(0, bytes.find('\0')),
            fmt::format("CMERA-INTEGRITY 1\nbytes {}\ncrc32 {:08x}\n", bytes.size(), crc));
  EXPECT_EQ(check_integrity(good).status, IntegrityStatus::verified);

  // Rank 0 writes a copy of `good` with the given bytes.
  const auto variant = [&](const std::string& name, const std::string& content) {
    const std::string path = file(name);
    if (comm.is_root()) std::ofstream(path, std::ios::binary) << content;
    comm.barrier();
    return path;
  };
  const std::string truncated = variant("truncated.h5", bytes.substr(0, bytes.size() - 1));
  expect_error([&] { read_model(comm, truncated); }, truncated,
               fmt::format("truncated ({} bytes, written as {})", bytes.size() - 1, bytes.size()));
  std::string changed = bytes;
  changed[bytes.size() / 2] ^= 0x01;
  const std::string damaged = variant("damaged.h5", changed);
  expect_error([&] { read_model(comm, damaged); }, damaged, "damaged: CRC-32");
  std::string unblocked = bytes;
  unblocked[0] = 'X';
  const std::string foreign = variant("foreign.h5", unblocked);
  expect_error([&] { read_model(comm, foreign); }, foreign, "no cmera integrity block");
}

TEST(Provenance, RecordsBuildAndRun) {
  EXPECT_EQ(version_string().rfind("cmera ", 0), 0u);
  EXPECT_NE(version_string().find("(git "), std::string::npos);
  const Attributes a = provenance("cmera train x.toml", "seed = 1");
  const std::vector<std::string> keys = {"cmera_version", "git_hash", "build_type", "compiler",
                                         "mpi_library", "hdf5_version", "created_utc", "host",
                                         "command", "parameters"};
  ASSERT_EQ(a.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(a[i].first, keys[i]);
    EXPECT_FALSE(a[i].second.empty()) << keys[i];
  }
  EXPECT_EQ(a[8].second, "cmera train x.toml");
  EXPECT_EQ(a[6].second.size(), 20u);  // 2024-01-02T03:04:05Z
  EXPECT_EQ(a[5].second.find('\n'), std::string::npos);
  EXPECT_EQ(a[4].second.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace cmera
