// HDF5 files, opened through MPI-IO. Datasets (/configs uint8 [S, N]) are read in
// hyperslabs: each rank its cyclic column slab, in sample blocks, so memory is bounded by
// block * slab; a contiguous /configs collectively, a chunked one through a per-rank
// serial handle, whole chunks across all sites per block (memory: block * sites). Models are written collectively (each rank its owned
// block of every layer) to a temporary name and renamed, so a failed write never
// damages an existing file. Every reader validates kind, shape and dtype and raises
// cmera::Error naming the file and what was expected.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cmera/comm.hpp"
#include "cmera/model.hpp"
#include "cmera/provenance.hpp"

namespace cmera {

struct DatasetShape {
  long samples = 0;
  long sites = 0;
  int alphabet = 0;  // from the "alphabet" attribute; 0 if absent
};

class DatasetReader {
 public:
  DatasetReader(const Comm& comm, const std::string& path);  // collective
  ~DatasetReader();
  DatasetReader(const DatasetReader&) = delete;
  DatasetReader& operator=(const DatasetReader&) = delete;

  const DatasetShape& shape() const { return shape_; }
  const std::string& path() const { return path_; }
  // Rows per read block for a request of `requested` rows: as requested for a contiguous
  // /configs; for a chunked one rounded up to whole chunks (no chunk is read twice).
  long block_rows(long requested) const;
  // Error naming the file when the "alphabet" attribute is present and differs.
  void require_alphabet(int alphabet) const;
  // Collective: every rank calls with the same sample range; each its own columns.
  // out becomes [count][columns.length], row-major.
  void read(long first_sample, long count, const CyclicRange& columns,
            std::vector<std::uint8_t>& out) const;

 private:
  const Comm& comm_;
  std::string path_;
  DatasetShape shape_;
  long file_ = -1;
  long dset_ = -1;
  // A chunked /configs (chunk_rows_ > 0) is read through a per-rank serial handle into
  // rows_, samples [rows_first_, rows_first_ + rows_count_) of every site (io.cpp).
  bool load_rows(long first, long count) const;
  long chunk_rows_ = 0, chunk_cols_ = 0;
  bool filtered_ = false;
  mutable std::vector<std::uint8_t> rows_;
  mutable long rows_first_ = 0, rows_count_ = 0;
};

// Collective: rank r contributes rows [first_row, first_row + rows.size()/sites).
// Lattice samples: /configs uint8 [S, sample_shape...] (e.g. [S, Ly, Lx]); same rules.
void write_dataset(const Comm& comm, const std::string& path, long total_samples,
                   const std::vector<long>& sample_shape, int alphabet, long first_row,
                   const std::vector<std::uint8_t>& rows, const Attributes& attrs);
void write_dataset(const Comm& comm, const std::string& path, long total_samples, long sites,
                   int alphabet, long first_row, const std::vector<std::uint8_t>& rows,
                   const Attributes& attrs);

struct ModelFileContents {
  Model model;
  std::string config_toml;
  std::vector<double> objective_history;
  std::vector<double> kl_history;
  Attributes provenance;
};

// What a file of another kind (a checkpoint) stores beside a model file's contents. io.cpp
// lays it out (extra table sets like /model, integers as root attributes); checkpoint.cpp
// says what it means. The trade-off: one writer and reader for every table-shaped thing,
// at the price of this generic bag instead of named fields.
struct ModelFileExtras {
  std::string kind;                                         // cmera_kind, e.g. "checkpoint"
  std::pair<std::string, long long> version;  // root attribute a read checks before all else
  std::vector<std::pair<std::string, long long>> integers;  // root int64 attributes; a read
                                                            // fills in the named ones' values
  std::vector<std::string> table_sets;  // groups laid out like /model (layers and top);
                                        // missing parent groups are created
  std::vector<const Tables*> tables;    // write: one per table set (shaped like the model)
  std::vector<Tables> loaded;           // read: one per table set
  // Read: runs once the config and integers are in, before any table is read (so a file
  // of another run is refused cheaply); it may throw cmera::Error, identically on every
  // rank, and may choose the table_sets to read from the integers.
  std::function<void(const std::string& config_toml, ModelFileExtras& self)> before_tables;
};

// Collective. For untied layers rank r writes its owned block (BlockPartition of the
// coarse sites over ranks); everything else is written by rank 0. With extras, every
// table set is written the same way. before_close runs with the temporary file complete
// but not yet closed or renamed (a test hook to make that window reachable). durable:
// fsync the file before the rename and the directory after it.
void write_model(const Comm& comm, const std::string& path, const ModelFileContents& contents,
                 const ModelFileExtras* extras = nullptr, bool durable = false,
                 const std::function<void()>& before_close = {});
// Collective; every rank gets the whole model. With extras, the file must be of kind
// extras->kind and every named integer and table set is read (refused if absent).
ModelFileContents read_model(const Comm& comm, const std::string& path,
                             ModelFileExtras* extras = nullptr);

// Collective; a human-readable summary of any HDF5 file (kind, format version, iteration
// and the other integer attributes, every dataset's type and shape, the last objective,
// provenance), valid on rank 0.
std::string describe_file(const Comm& comm, const std::string& path);

}  // namespace cmera
