#include "agent/memory.h"

#include <malloc.h>

namespace tollgate::agent {

void releaseFreedMemory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace tollgate::agent
