// The extension library as a whole: it owns the `fastgram` operator
// namespace (each op family's file adds its schemas to it with
// TORCH_LIBRARY_FRAGMENT) and is importable as a Python module whose
// build_info() tells how this binary was compiled (fastgram info shows it).
//
// pybind11 here comes from the pybind11 package when it is installed (its
// include directory is put first by the build), else from the copy torch
// bundles; no other translation unit uses it.

#include <pybind11/pybind11.h>
#include <torch/library.h>

#include <string>

#ifndef TORCH_EXTENSION_NAME
#error "TORCH_EXTENSION_NAME must name the module (torch's extension builder defines it)"
#endif

namespace {

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

pybind11::dict build_info() {
  pybind11::dict info;
  info["compiler"] = compiler();
  info["cplusplus"] = static_cast<long>(__cplusplus);
#ifdef _OPENMP
  info["openmp"] = static_cast<long>(_OPENMP);
#else
  info["openmp"] = pybind11::none();
#endif
#ifdef FASTGRAM_WITH_CUDA
  info["cuda_sources"] = true;
#else
  info["cuda_sources"] = false;
#endif
  info["pybind11"] = std::to_string(PYBIND11_VERSION_MAJOR) + "." +
                     std::to_string(PYBIND11_VERSION_MINOR) + "." +
                     std::to_string(PYBIND11_VERSION_PATCH);
  return info;
}

}  // namespace

TORCH_LIBRARY(fastgram, m) {}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "fastgram's compiled operators (torch.ops.fastgram.ext_*) and their build information";
  m.def("build_info", &build_info,
        "How this library was compiled: compiler, C++ standard, OpenMP, CUDA sources, pybind11");
}
