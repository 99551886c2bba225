# lexis Makefile
#
#   make                     build build/<cfg>/lexis and the module libraries
#   make test                build and run every test suite (cmocka + shell)
#   make check-deps          fail if a layer includes a layer above it
#   make fuzz                build the libFuzzer targets (clang) into build/fuzz
#   make eval                BM25 on every test collection: table + build/eval/results.json
#   make quality-gate        make eval, then fail if a metric is below tests/quality-floors.tsv
#   make bench               lexis vs Xapian vs SQLite FTS5: build/bench/report.json, latency.png
#   make clean
#
# Knobs (persisted in $(BUILD)/.make-settings; changing one rebuilds):
#   SANITIZER=address|undefined|thread   instrumented build in build/<sanitizer>
#   OPT=-O3                              optimization flags
#   NATIVE=1                             -march=native
#   CUDA=1                               also build the CUDA backend (kernels/cuda/*.cu, nvcc,
#                                        cuBLAS) into build/<cfg>-cuda; NVCC=, CUDA_HOME=,
#                                        CUDA_ARCH= override the compiler and targets
#   make test-cuda                       CUDA=1 build, then the kernel and BERT suites with
#                                        LX_REQUIRE_CUDA=1 (a missing GPU fails, not skips)
#
# -D macros used in the sources:
#   UNIT_TESTING     set for test binaries (cmocka's allocators in tests)
#   LX_CUDA          set when CUDA=1
# Environment read by tests: LX_REQUIRE_CUDA=1 (CUDA suites fail instead of skip)

CC       ?= cc
# -O3 rather than -O2: top-10 queries ran 4.0% (SciFact), 4.6% (Debian
# corpus) and 4.5% (synth2m) faster (tools/bench/ab.sh), mostly in index/ and encoder/, where
# -O3 vectorizes and unrolls loops -O2 leaves scalar; index builds took the
# same time. Floating point is unchanged: no -ffast-math, and in C11 mode gcc
# contracts nothing into FMAs, so scores stay bit-identical across builds.
OPT      ?= -O3
SANITIZER ?=
NATIVE   ?=
CUDA     ?=

CFG      := $(if $(SANITIZER),$(SANITIZER),release)$(if $(filter 1,$(CUDA)),-cuda)
BUILD    := build/$(CFG)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -MMD -MP -fno-strict-aliasing
LDLIBS   := -lopenblas -llmdb -lxxhash -ljansson -lutf8proc -lstemmer -lstreamvbyte -lroaring -lzstd -levent -levent_pthreads -lm -lpthread
ifeq ($(NATIVE),1)
CFLAGS   += -march=native
endif
ifneq ($(SANITIZER),)
CFLAGS   += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZER)
endif
ifeq ($(CUDA),1)
CFLAGS   += -DLX_CUDA
endif

MODULES  := kernels encoder index query server
LIB_SRC  := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(wildcard tools/lexis*.c tools/cmd_*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
AUX_SRC  := $(filter-out $(CLI_SRC),$(wildcard tools/*.c))
AUX_BIN  := $(AUX_SRC:tools/%.c=$(BUILD)/%)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/%)
SETTINGS := $(BUILD)/.make-settings

# CUDA=1: kernels/cuda/*.cu into liblexis.a. sm_90a code for H100/H200 (wgmma needs
# the "a" target, which runs on compute capability 9.0 only) plus
# compute_80 PTX that any newer GPU's driver compiles at load.
ifeq ($(CUDA),1)
CUDA_HOME ?= /usr/local/cuda
NVCC     ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=compute_80
NVFLAGS  := -std=c++17 -O3 $(CUDA_ARCH) -MMD -MP -DLX_CUDA -Xcompiler -Wall
CU_SRC   := $(wildcard kernels/cuda/*.cu)
CU_OBJ   := $(CU_SRC:%.cu=$(BUILD)/%.o)
LIB_OBJ  += $(CU_OBJ)
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
$(BUILD)/%.o: %.cu $(SETTINGS) kernels/kernels.h kernels/kernels_impl.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@
endif

.PHONY: all test test-cuda check-deps fuzz eval quality-gate clean FORCE

all: $(BUILD)/lexis $(AUX_BIN)

$(SETTINGS): FORCE
	@mkdir -p $(BUILD)
	@echo "$(CC) $(CFLAGS) $(LDFLAGS)" | cmp -s - $@ || echo "$(CC) $(CFLAGS) $(LDFLAGS)" > $@

$(BUILD)/%.o: %.c $(SETTINGS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblexis.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lexis: $(CLI_OBJ) $(BUILD)/liblexis.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(BUILD)/tools/%.o $(BUILD)/liblexis.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: $(BUILD)/tests/test_%.o $(BUILD)/liblexis.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# BERT throughput (tools/bench/bert-*.sh run it beside the PyTorch peer).
$(BUILD)/bert-bench: $(BUILD)/tools/bench/bert-bench.o $(BUILD)/liblexis.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

test: all $(TEST_BIN)
	@LEXIS=$(BUILD)/lexis BUILD=$(BUILD) tests/run-all.sh $(TEST_BIN)
	@$(if $(filter 1,$(CUDA)),,echo "make test: CUDA tests SKIPPED (built without CUDA=1; run 'make test-cuda' on a machine with a GPU)")

# The CUDA suites on a GPU machine: build with CUDA=1 and fail if no GPU.
test-cuda:
	@$(MAKE) --no-print-directory CUDA=1 build/release-cuda/test_kernels_ops build/release-cuda/test_bert
	LX_REQUIRE_CUDA=1 build/release-cuda/test_kernels_ops
	LX_REQUIRE_CUDA=1 build/release-cuda/test_bert

check-deps:
	@tools/check-deps.sh

# Every collection in $(LEXIS_DATA) (default ../shared/data): one table,
# written to build/eval/results.json; quality-gate compares with the floors.
eval: $(BUILD)/lexis
	@tools/eval-all.sh $(BUILD)/lexis

quality-gate: eval
	@tools/quality-gate.sh

# lexis against Xapian and SQLite FTS5 on the same corpora and queries
# (tools/bench/README.md). BENCH_CORPORA="debpkgs scifact synth2m" selects.
.PHONY: bench
bench: $(BUILD)/lexis $(BUILD)/gen-corpus $(BUILD)/deb2jsonl $(BUILD)/bench-lexis-lat
	@LEXIS=$(BUILD)/lexis BUILD=$(BUILD) tools/bench/run.sh

$(BUILD)/bench-lexis-lat: $(BUILD)/tools/bench/lexis-lat.o $(BUILD)/liblexis.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets: clang with -fsanitize=fuzzer,address,undefined.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz: $(FUZZ_BIN)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(wildcard */*.h) $(wildcard tests/fuzz/*.h)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(LDLIBS)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.d) $(AUX_SRC:%.c=$(BUILD)/%.d) \
         $(patsubst %.c,$(BUILD)/%.d,$(wildcard tools/bench/*.c))
.SECONDARY:
