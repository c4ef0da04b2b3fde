// HDF5 files, always opened through MPI-IO. Datasets (/configs uint8 [S, N]) are read in
// collective hyperslabs: each rank its cyclic column slab, in sample chunks, so memory
// is bounded by chunk * slab. Models are written collectively (each rank its owned
// block of every layer) to a temporary name and renamed, so a failed write never
// damages an existing file. Every reader validates kind, shape and dtype and raises
// cmera::Error naming the file and what was expected.
#pragma once
#include <cstdint>
#include <string>
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
};

// Collective: rank r contributes rows [first_row, first_row + rows.size()/sites).
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

// Collective. For untied layers rank r writes its owned block (BlockPartition of the
// coarse sites over ranks); everything else is written by rank 0.
void write_model(const Comm& comm, const std::string& path, const ModelFileContents& contents);
// Collective; every rank gets the whole model.
ModelFileContents read_model(const Comm& comm, const std::string& path);

}  // namespace cmera
