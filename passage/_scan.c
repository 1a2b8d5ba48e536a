/* passage._scan: one direction of a recurrent layer at inference, every step in C (optional;
 * passage/skip_padding.py falls back to a loop of PyTorch ops).
 *
 * The loop in Python costs about a dozen PyTorch calls per step, each a dispatch of a few
 * microseconds that holds the GIL: for the small batches of a service (one text, a few texts) that
 * overhead is the whole cost, and the threads of a batch per core wait for each other. Here the
 * rows run in lanes (Plan) whose steps go through the recurrent matmul ROWS at a time: its sums
 * stay in registers and it reads the recurrent weights from cache, each row stops at its own
 * length (padding is never computed), the next step's table rows are prefetched, and the GIL
 * is released throughout. The loop (passage/_scan_loop.h) is compiled once per instruction set
 * (AVX-512, AVX2 + FMA, SSE/NEON, plain C) and the best one the CPU runs is picked when the
 * module loads.
 *
 * Inputs, float32, contiguous (passage/skip_padding.py allocates and checks them):
 *   src     the input projections with b_ih: a table (vocabulary, G * size) looked up by ids
 *           (batch, width) int64, or, with ids NULL, every step's (batch, width, G * size)
 *   lengths (batch,) int64, in any order (rows run in lanes: see Plan)
 *   wt      the recurrent weights transposed, (size, G * size); b the recurrent bias (G * size)
 *   h, c    the initial states (batch, size), overwritten with each row's state at its last step
 *           (c: LSTM only)
 *   out     NULL or (batch, width, size) zeros: every step's output is written there
 *   pooled  NULL or (batch, size): the outputs' max (0 for an empty row) or mean over the steps
 * With reverse, each row is read from its last real step back to its first (the backward
 * direction of a bidirectional layer), and its outputs are written at the positions read.
 * kinds (G): 'g' GRU (3; gates r, z, n), 'l' LSTM (4; i, f, g, o), 't' tanh or 'r' relu RNN (1).
 * Gates are plain sigmoids: steeper ones are folded into the weights by the caller.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "_kernels.h"

#define ROWS 4       /* rows per matmul */
#define MAX_GROUPS 4 /* matmuls per step, at most */
#define MAX_LANES (ROWS * MAX_GROUPS)

typedef struct {
    const float *src;
    const int64_t *ids, *lengths;
    const float *wt, *b;
    float *h, *c, *out, *pooled;
    Py_ssize_t batch, width, size, n; /* n = G * size */
    int kind, pool;                   /* pool: 0 none, 'm' max, 'a' mean */
    int reverse;                      /* read each row from its last real step back to its first */
} Scan;

/* Which rows run when. Rows of different lengths run side by side would leave a matmul short of
 * rows at most steps (the rows that ended leave gaps), and a matmul of 1 to 3 rows costs nearly
 * what one of 4 does: its time goes to reading the weights. So the rows are dealt to lanes, longest
 * first, each to the lane with the fewest steps so far; a lane runs its rows one after another,
 * so every lane runs about as long as the others and the matmuls stay full until the end. The
 * number of lanes (a lane per row, or whole groups of ROWS, at most MAX_GROUPS groups) is the one
 * whose steps cost the least (plan_cost); the more lanes the better among equals: groups of a step
 * are independent, so the CPU overlaps one's gates with the next one's matmul. */
typedef struct {
    int lanes;
    Py_ssize_t first[MAX_LANES]; /* each lane's first row */
    Py_ssize_t *next;            /* (batch,) the row after each in its lane, -1 after the last */
} Plan;

typedef void (*ScanRows)(const Scan *, const Plan *, float *);

/* the steps row i runs: its length, within 0..width */
static Py_ssize_t row_length(const Scan *s, Py_ssize_t i)
{
    const int64_t len = s->lengths[i];
    return len < 0 ? 0 : (len > s->width ? s->width : (Py_ssize_t)len);
}


#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)0)
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MULTI_ISA 1
#pragma GCC push_options
#pragma GCC target("avx512f")
#define VARIANT avx512
#define VFLOATS 16
#define COLS 64
#include "_scan_loop.h"
#undef VARIANT
#undef VFLOATS
#undef COLS
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VARIANT avx2
#define VFLOATS 8
#define COLS 24
#include "_scan_loop.h"
#undef VARIANT
#undef VFLOATS
#undef COLS
#pragma GCC pop_options
#endif

#if defined(__GNUC__)
#define VFLOATS 4 /* SSE2 on x86-64, NEON on arm64 */
#else
#define VFLOATS 1
#endif
#define VARIANT plain
#define COLS 16
#include "_scan_loop.h"

static const char *NAMES[] = {"avx512", "avx2", "plain"};
#ifdef MULTI_ISA
static const ScanRows VARIANTS[] = {scan_rows_avx512, scan_rows_avx2, scan_rows_plain};
#else
static const ScanRows VARIANTS[] = {NULL, NULL, scan_rows_plain};
#endif
static int runs[3]; /* which variants this CPU runs (set when the module loads) */

/* the rows' order, longest first (then by index): a merge sort of idx by length, tmp its scratch */
static void longest_first(const Scan *s, Py_ssize_t *idx, Py_ssize_t *tmp, Py_ssize_t count)
{
    for (Py_ssize_t run = 1; run < count; run *= 2) {
        for (Py_ssize_t lo = 0; lo < count; lo += 2 * run) {
            const Py_ssize_t mid = lo + run < count ? lo + run : count;
            const Py_ssize_t hi = lo + 2 * run < count ? lo + 2 * run : count;
            Py_ssize_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = row_length(s, idx[b]) > row_length(s, idx[a]) ? idx[b++] : idx[a++];
            while (a < mid)
                tmp[k++] = idx[a++];
            while (b < hi)
                tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, count * sizeof(Py_ssize_t));
    }
}

/* rows order[0 .. count) (longest first) dealt to `lanes` lanes, each to the lane with the fewest
 * steps so far; each lane's steps in load; with next, the lanes' rows chained (plan->first) */
static void deal(const Scan *s, const Py_ssize_t *order, Py_ssize_t count, int lanes,
                 Py_ssize_t *load, Py_ssize_t *next, Plan *plan)
{
    Py_ssize_t last[MAX_LANES];
    for (int l = 0; l < lanes; l++)
        load[l] = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        int l = 0;
        for (int m = 1; m < lanes; m++)
            if (load[m] < load[l])
                l = m;
        const Py_ssize_t i = order[k];
        if (next) {
            if (load[l] == 0)
                plan->first[l] = i;
            else
                next[last[l]] = i;
            last[l] = i;
        }
        load[l] += row_length(s, i);
    }
}

/* what the lanes' steps cost, in full matmuls: at each step the running lanes go ROWS at a time,
 * and a matmul of r < ROWS rows costs about (r + 1) / ROWS of a full one (measured: most of its
 * time goes to reading the weights) */
static double plan_cost(Py_ssize_t *load, int lanes)
{
    for (int a = 1; a < lanes; a++) /* the loads, longest first (a handful: insertion) */
        for (int b = a; b > 0 && load[b] > load[b - 1]; b--) {
            const Py_ssize_t x = load[b];
            load[b] = load[b - 1];
            load[b - 1] = x;
        }
    double cost = 0;
    for (int j = 0; j < lanes; j++) { /* between load[j + 1] and load[j], j + 1 lanes run */
        const Py_ssize_t span = load[j] - (j + 1 < lanes ? load[j + 1] : 0);
        const int running = j + 1, rest = running % ROWS;
        cost += span * (running / ROWS + (rest ? (rest + 1) / (double)ROWS : 0.0));
    }
    return cost;
}

/* the Plan (see there); work: 3 * batch indexes, plan->next its first third */
static void make_plan(const Scan *s, Plan *plan, Py_ssize_t *work)
{
    Py_ssize_t *next = work, *order = work + s->batch, count = 0;
    for (Py_ssize_t i = 0; i < s->batch; i++) {
        next[i] = -1;
        if (row_length(s, i) > 0) /* an empty row never runs */
            order[count++] = i;
    }
    longest_first(s, order, work + 2 * s->batch, count);
    /* the lane counts tried: a lane per row (when they fit), or whole groups */
    int best = count < MAX_LANES ? (int)count : MAX_LANES;
    Py_ssize_t load[MAX_LANES];
    deal(s, order, count, best, load, NULL, plan);
    double least = plan_cost(load, best);
    for (int lanes = (best - 1) / ROWS * ROWS; lanes >= ROWS; lanes -= ROWS) { /* ties: more */
        deal(s, order, count, lanes, load, NULL, plan);
        const double cost = plan_cost(load, lanes);
        if (cost < least) {
            least = cost;
            best = lanes;
        }
    }
    plan->lanes = best;
    plan->next = next;
    deal(s, order, count, best, load, next, plan);
}

/* scan(src, ids, lengths, wt, b, h, c, out, pooled, batch, width, size, kind, pool, reverse,
 * variant): variant is an index into NAMES, or -1 for the best this CPU runs */
static PyObject *scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 16) {
        PyErr_Format(PyExc_TypeError, "scan expected 16 arguments, got %zd", nargs);
        return NULL;
    }
    void *p[9];
    for (int i = 0; i < 9; i++) { /* addresses; 0 for the optional ids, c, out, pooled */
        p[i] = PyLong_AsVoidPtr(args[i]);
        if (PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t batch = PyLong_AsSsize_t(args[9]), width = PyLong_AsSsize_t(args[10]);
    Py_ssize_t size = PyLong_AsSsize_t(args[11]);
    long kind = PyLong_AsLong(args[12]), pool = PyLong_AsLong(args[13]);
    int reverse = PyObject_IsTrue(args[14]);
    long variant = PyLong_AsLong(args[15]);
    if (reverse < 0 || PyErr_Occurred())
        return NULL;
    if (variant < 0)
        for (variant = 0; !runs[variant]; variant++)
            ;
    const int gates = kind == 'g' ? 3 : (kind == 'l' ? 4 : (kind == 't' || kind == 'r' ? 1 : 0));
    if (!gates || (pool != 0 && pool != 'm' && pool != 'a') || batch < 0 || width < 0 || size < 1
        || variant > 2 || !runs[variant] || !p[0] || !p[2] || !p[3] || !p[4] || !p[5]
        || (kind == 'l' && !p[6])) {
        PyErr_SetString(PyExc_ValueError,
                        "scan: bad kind, pool, sizes or variant, or a missing address");
        return NULL;
    }
    Scan s = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], batch, width, size,
              gates * size, (int)kind, (int)pool, reverse};
    const ScanRows scan_rows = VARIANTS[variant];
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    /* (no GIL: malloc, not PyMem) */
    float *gh = malloc(ROWS * (size_t)s.n * sizeof(float));
    Py_ssize_t *work = malloc((3 * (size_t)batch + 1) * sizeof(Py_ssize_t));
    if (!gh || !work)
        err = 1;
    if (!err) {
        Plan plan;
        make_plan(&s, &plan, work);
        scan_rows(&s, &plan, gh);
    }
    free(gh);
    free(work);
    Py_END_ALLOW_THREADS
    if (err)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(src, ids, lengths, wt, b, h, c, out, pooled, batch, width, size, kind, pool, "
     "reverse, variant): one direction of a recurrent layer over a batch, rows in any order (see "
     "passage/_scan.c); variant: an index into VARIANTS, -1 for the best this CPU runs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "passage._scan",
    .m_doc = "A recurrent layer's inference scan in C (see passage.skip_padding).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__scan(void)
{
#ifdef MULTI_ISA
    __builtin_cpu_init();
    runs[0] = __builtin_cpu_supports("avx512f");
    runs[1] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    runs[2] = 1;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    /* VARIANTS: every variant's name (scan's variant indexes it); RUNS: those this CPU runs,
     * best first (scan's default is RUNS[0]) */
    PyObject *all = PyTuple_New(3), *ok = PyList_New(0);
    for (int i = 0; all && ok && i < 3; i++) {
        PyTuple_SET_ITEM(all, i, PyUnicode_FromString(NAMES[i]));
        if (runs[i])
            PyList_Append(ok, PyTuple_GET_ITEM(all, i));
    }
    if (!all || !ok || PyModule_AddObject(m, "VARIANTS", all) < 0) {
        Py_XDECREF(all);
        Py_XDECREF(ok);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *okt = PyList_AsTuple(ok);
    Py_DECREF(ok);
    if (!okt || PyModule_AddObject(m, "RUNS", okt) < 0) {
        Py_XDECREF(okt);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
