// tollgate-cni: see cni/plugin.h.
#include <iostream>
#include <iterator>
#include <string>

#include "cni/plugin.h"

int main() {
  std::string input(std::istreambuf_iterator<char>(std::cin), {});
  return tollgate::cni::run(tollgate::cni::processEnvironment(), input, std::cout, std::cerr);
}
