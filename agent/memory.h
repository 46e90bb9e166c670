#pragma once

namespace tollgate::agent {

// Hands the pages that a burst of control-plane work freed back to the kernel (glibc
// malloc_trim(0): every arena, not only the top of the main heap).
//
// Why: config loads, libnftables runs on the short-lived netns helper threads and enrollments
// allocate a few MB at a time and free almost all of it, but glibc keeps freed pages in the middle
// of its arenas mapped. On an idle lab agent malloc_stats() showed 13 MB held by malloc and 0.4 MB
// in use; trimming took RssAnon from 7.2 MB to 1.7 MB (bench/results/*-footprint.md). Call it
// after such bursts, off the data path and outside locks the data path takes; it costs well under
// a millisecond on a heap this size.
void releaseFreedMemory();

}  // namespace tollgate::agent
