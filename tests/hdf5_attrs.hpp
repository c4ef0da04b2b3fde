// Test helper: a fixed-length string attribute read with plain HDF5 calls (what cmera
// writes; see src/io/hdf5_file.cpp), independent of cmera's own reader. "<unreadable>" when the
// attribute is missing or variable-length.
#pragma once
#include <hdf5.h>

#include <string>

inline std::string fixed_string_attr(hid_t obj, const char* name) {
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return "<unreadable>";
  const hid_t t = H5Aget_type(a);
  std::string s = "<unreadable>";
  if (H5Tis_variable_str(t) == 0) {
    std::string buf(H5Tget_size(t), '\0');
    if (H5Aread(a, t, buf.data()) >= 0) s = buf.substr(0, buf.find('\0'));
  }
  H5Tclose(t);
  H5Aclose(a);
  return s;
}
