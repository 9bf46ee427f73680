/* Makes this CPU look AVX2-only to the process it is preloaded into (Linux, x86-64).

   Every library that picks a kernel at run time (XLA's code generator, YNNPACK's matmuls,
   oneDNN and MKL inside torch) asks the CPU what it has with the CPUID instruction. With
   CPUID faulting (arch_prctl ARCH_SET_CPUID, 0; the CPU flag "cpuid_fault") each CPUID
   raises SIGSEGV instead; the handler below runs the real instruction, clears the bits of
   AVX-512, AVX-512 BF16/FP16, AVX-VNNI and AMX, and steps over it. The process then takes
   the kernels an AVX2-only CPU gets, on this machine's memory and clock: a stand-in for an
   AVX2 machine, not the same as one. Faulting is inherited by threads and reset by execve;
   LD_PRELOAD in the environment reloads this into child processes.

   It sets JAXLOSS_HIDDEN_CPU_FEATURES, which jaxloss.parity.timing.machine_record() reads,
   so every figure measured under it says so. Built and used by benchmarks/avx2_only/run. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

/* The program's own SIGSEGV handler: it still gets every fault that is not a CPUID. */
static struct sigaction program_handler;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void real_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                   : "a"(leaf), "c"(subleaf));
  syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
}

/* Bit positions from Intel's SDM, volume 2A, CPUID leaf 07H and 0DH. */
static void hide(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
  if (leaf == 7 && subleaf == 0) {
    /* EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL */
    r[1] &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
    /* ECX: AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
    r[2] &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
    /* EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX_BF16, AVX512_FP16, AMX_TILE, AMX_INT8 */
    r[3] &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
  } else if (leaf == 7 && subleaf == 1) {
    /* EAX: AVX_VNNI, AVX512_BF16, AMX_FP16, AVX_IFMA */
    r[0] &= ~(BIT(4) | BIT(5) | BIT(21) | BIT(23));
    /* EDX: AVX_VNNI_INT8, AVX_NE_CONVERT, AVX_VNNI_INT16, AVX10 */
    r[3] &= ~(BIT(4) | BIT(5) | BIT(10) | BIT(19));
  } else if (leaf == 0xd && subleaf == 0) {
    /* EAX: the XSAVE state components of AVX-512 (opmask, ZMM) and AMX (tile config, data) */
    r[0] &= ~(BIT(5) | BIT(6) | BIT(7) | BIT(17) | BIT(18));
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = context;
  greg_t *regs = uc->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)regs[REG_RIP];
  if (ip[0] == 0x0f && ip[1] == 0xa2) { /* CPUID */
    uint32_t r[4], leaf = (uint32_t)regs[REG_RAX], subleaf = (uint32_t)regs[REG_RCX];
    real_cpuid(leaf, subleaf, r);
    hide(leaf, subleaf, r);
    regs[REG_RAX] = r[0], regs[REG_RBX] = r[1], regs[REG_RCX] = r[2], regs[REG_RDX] = r[3];
    regs[REG_RIP] += 2;
    return;
  }
  if ((program_handler.sa_flags & SA_SIGINFO) && program_handler.sa_sigaction) {
    program_handler.sa_sigaction(sig, info, context);
  } else if (program_handler.sa_handler != SIG_DFL && program_handler.sa_handler != SIG_IGN) {
    program_handler.sa_handler(sig);
  } else { /* a real fault and no handler: die of it, as the program would */
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &fallback, NULL);
    raise(SIGSEGV);
  }
}

/* The program may install its own SIGSEGV handler (Python's faulthandler does): keep ours
   in place and call theirs for the faults that are not CPUID. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (!real_sigaction) real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  if (sig != SIGSEGV) return real_sigaction(sig, act, old);
  if (old) *old = program_handler;
  if (act) program_handler = *act;
  return 0;
}

__attribute__((constructor)) static void start(void) {
  real_sigaction = dlsym(RTLD_NEXT, "sigaction");
  struct sigaction ours;
  memset(&ours, 0, sizeof ours);
  ours.sa_sigaction = on_segv;
  ours.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&ours.sa_mask);
  real_sigaction(SIGSEGV, &ours, NULL);
  if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
    perror("hide_cpu_features: this CPU or kernel has no CPUID faulting (arch_prctl)");
    _exit(3);
  }
  setenv("JAXLOSS_HIDDEN_CPU_FEATURES",
         "avx512f,avx512dq,avx512cd,avx512bw,avx512vl,avx512ifma,avx512vbmi,avx512_vbmi2,"
         "avx512_vnni,avx512_bitalg,avx512_vpopcntdq,avx512_fp16,avx512_bf16,avx_vnni,"
         "amx_bf16,amx_tile,amx_int8",
         1);
}
