// HDF5 files. Datasets (/configs uint8 [S, N]) are read in hyperslabs: each rank its
// cyclic column slab, in sample blocks, so memory is bounded by block * slab; a contiguous
// /configs collectively through MPI-IO, a chunked one through a per-rank serial handle,
// whole chunks across all sites per block (memory: block * sites). Datasets are written
// collectively into disk space reserved beforehand. Models and checkpoints are built in
// rank 0's memory and written by it. Every writer goes through a temporary name that is
// renamed once complete, so a failed write never
// damages an existing file. Every reader validates kind, shape and dtype and raises
// cmera::Error naming the file and what was expected.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
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
  std::vector<long> sample_dims;  // one sample's shape: {sites}, or {Ly, Lx} (lattice samples)
};

class DatasetReader {
 public:
  // Collective. lattice_samples: /configs may also be [S, Ly, Lx] (grid models, read with
  // read_box); otherwise only [S, sites] is accepted.
  DatasetReader(const Comm& comm, const std::string& path, bool lattice_samples = false);
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
  // Collective, [S, Ly, Lx] datasets: every rank its periodic box of rows (y) x columns (x)
  // of the same samples. out becomes [count][rows.length][columns.length], row-major.
  void read_box(long first_sample, long count, const CyclicRange& rows,
                const CyclicRange& columns, std::vector<std::uint8_t>& out) const;

 private:
  const Comm& comm_;
  std::string path_;
  DatasetShape shape_;
  long file_ = -1;
  long dset_ = -1;
  // A chunked /configs (chunk_rows_ > 0) is read through a per-rank serial handle into
  // rows_, samples [rows_first_, rows_first_ + rows_count_) of every site (src/io/dataset_reader.cpp).
  bool load_rows(long first, long count) const;
  long chunk_rows_ = 0, chunk_cols_ = 0;
  bool hdf5_blocks_ = false;  // blocks read by H5Dread: filtered chunks, or 3D ones
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

// Rows [first, first + count) of a dataset drawn into `out` ([count][sites], row-major);
// the rows depend only on their index, never on how they are split into calls.
using RowSource = std::function<void(long first, long count, std::uint8_t* out)>;
// Collective: a [total_samples, sites] dataset whose rows `draw` produces, in blocks of
// dataset_block_rows (each rank draws and writes its share of a block, about 64 MiB, at a
// time), so memory does not grow with the number of samples.
void write_dataset(const Comm& comm, const std::string& path, long total_samples, long sites,
                   int alphabet, const RowSource& draw, const Attributes& attrs);
// Rows of one such block over all ranks.
long dataset_block_rows(const Comm& comm, long sites);

struct ModelFileContents {
  Model model;
  std::string config_toml;
  std::vector<double> objective_history;
  std::vector<double> kl_history;
  Attributes provenance;
};

// What a file of another kind (a checkpoint) stores beside a model file's contents.
// src/io/model_file.cpp lays it out (extra table sets like /model, integers as root attributes); checkpoint.cpp
// says what it means. The trade-off: one writer and reader for every table-shaped thing,
// at the price of this generic bag instead of named fields.
struct ModelFileExtras {
  std::string kind;                                         // cmera_kind, e.g. "checkpoint"
  std::pair<std::string, long long> version;  // root attribute a read checks before all else
  std::vector<std::pair<std::string, long long>> integers;  // root int64 attributes; a read
                                                            // fills in the named ones' values
  std::vector<std::pair<std::string, std::string>> strings;  // root string attributes; a read
                                                             // fills in the named ones ("" if absent)
  std::string temporary_tag;  // write: names the temporary `<path>.tmp.<tag>` (default: the
                              // writer's pid), so that the writer's run can find its leftovers
  std::vector<std::string> table_sets;  // groups laid out like /model (layers and top);
                                        // missing parent groups are created
  std::vector<const Tables*> tables;    // write: one per table set (shaped like the model)
  std::vector<Tables> loaded;           // read: one per table set
  // Read: runs once the config and integers are in, before any table is read (so a file
  // of another run is refused cheaply); it may throw cmera::Error, identically on every
  // rank, and may choose the table_sets to read from the integers.
  std::function<void(const std::string& config_toml, ModelFileExtras& self)> before_tables;
};

// Collective. Rank 0 builds the whole file in its memory (untied layers: each rank sends it
// the rows it owns, BlockPartition of the coarse sites over ranks; everything else is rank
// 0's) and writes it to a temporary that is renamed onto `path` once complete, so a full
// disk or an I/O error is one clean failure (exit kExitWrite, the temporary removed, an
// existing `path` untouched) and never a hung collective. With extras, every table set is
// written the same way. before_rename runs on rank 0 with the temporary complete but not
// yet renamed (a test hook to make that window reachable). durable: fsync the file before
// the rename and the directory after it.
void write_model(const Comm& comm, const std::string& path, const ModelFileContents& contents,
                 const ModelFileExtras* extras = nullptr, bool durable = false,
                 const std::function<void()>& before_rename = {});
// Collective; every rank gets the whole model. With extras, the file must be of kind
// extras->kind and every named integer and table set is read (refused if absent).
ModelFileContents read_model(const Comm& comm, const std::string& path,
                             ModelFileExtras* extras = nullptr);

// What a file that cmera wrote says about itself: enough to decide whether a command may
// replace it (output_guard.hpp) or a run may rotate it (checkpoint.hpp).
struct FileIdentity {
  std::string kind;         // cmera_kind: dataset, model, checkpoint
  std::string config_toml;  // /config toml (models and checkpoints; "" for datasets)
  std::string parameters;   // provenance attribute "parameters"
  std::string run_id;       // checkpoints: the training run that wrote it
};

// Local (one rank, no MPI): the identity of the cmera file at `path`, or nullopt with
// `why_not` saying why it is not one (no integrity block, damaged, not HDF5, no
// cmera_kind). The integrity block is verified before HDF5 reads any attribute.
std::optional<FileIdentity> identify_cmera_file(const std::string& path, std::string& why_not);

// Collective; a human-readable summary of any HDF5 file (kind, format version, iteration
// and the other integer attributes, every dataset's type and shape, the last objective,
// provenance), valid on rank 0.
std::string describe_file(const Comm& comm, const std::string& path);

}  // namespace cmera
