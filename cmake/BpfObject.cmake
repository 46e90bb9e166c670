# BPF objects and their libbpf skeletons (libbpf-bootstrap's FindBpfObject pattern).
#
# vmlinux.h is generated once per build directory from the build machine's BTF
# (/sys/kernel/btf/vmlinux) with bpftool; every .bpf.c includes it.
#
# bpf_object(<name> <src.bpf.c>) compiles <src> with clang for the BPF target and generates
# <name>.skel.h with `bpftool gen skeleton`; the INTERFACE target <name>_skel carries the include
# directory and the dependency on the generated header.
find_program(TOLLGATE_BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
find_program(TOLLGATE_BPF_CLANG NAMES clang-19 clang REQUIRED)
set(TOLLGATE_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "BTF that vmlinux.h is generated from")
set(TOLLGATE_BPF_GEN_DIR ${PROJECT_BINARY_DIR}/bpf/gen)
set(TOLLGATE_VMLINUX_H ${TOLLGATE_BPF_GEN_DIR}/vmlinux.h)

add_custom_command(
  OUTPUT ${TOLLGATE_VMLINUX_H}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${TOLLGATE_BPF_GEN_DIR}
  COMMAND sh -c "'${TOLLGATE_BPFTOOL}' btf dump file '${TOLLGATE_BTF}' format c > '${TOLLGATE_VMLINUX_H}.tmp' && mv '${TOLLGATE_VMLINUX_H}.tmp' '${TOLLGATE_VMLINUX_H}'"
  COMMENT "vmlinux.h from ${TOLLGATE_BTF}"
  VERBATIM)

function(bpf_object name src)
  set(obj ${TOLLGATE_BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${TOLLGATE_BPF_GEN_DIR}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${TOLLGATE_BPF_CLANG} -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86
            -I${TOLLGATE_BPF_GEN_DIR} -I${CMAKE_CURRENT_SOURCE_DIR} -c ${src} -o ${obj}
    DEPENDS ${src} ${TOLLGATE_VMLINUX_H} ${CMAKE_CURRENT_SOURCE_DIR}/tollgate_abi.h
    COMMENT "BPF object ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND sh -c "'${TOLLGATE_BPFTOOL}' gen skeleton '${obj}' name tg_${name} > '${skel}.tmp' && mv '${skel}.tmp' '${skel}'"
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  target_include_directories(${name}_skel INTERFACE ${TOLLGATE_BPF_GEN_DIR})
  add_dependencies(${name}_skel ${name}_skel_gen)
endfunction()
