/* The keyed Feistel permutation of permutation.py, one position at a time in C.
 *
 * numpy runs each of the network's operations over the whole array: six rounds of
 * a five-step mix are ~40 passes over memory, ~50 ns a position here, which put a
 * cache-mode epoch's plan (a position per row) at a third of the epoch. Here a
 * position goes through every round and its cycle walk in registers. The result
 * is bit for bit that of the numpy path (tests/runtime/test_permutation.py), which
 * runs where no C compiler was found at install.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static inline uint64_t mix(uint64_t x) {
    /* SplitMix64's finaliser, as permutation.splitmix64. */
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static inline uint64_t network(uint64_t x, const uint64_t *keys, Py_ssize_t rounds, int half,
                               uint64_t mask, int inverse) {
    uint64_t left = x >> half, right = x & mask, t;
    if (inverse) {
        for (Py_ssize_t r = rounds - 1; r >= 0; r--) {
            t = right ^ (mix(left ^ keys[r]) & mask);
            right = left;
            left = t;
        }
    } else {
        for (Py_ssize_t r = 0; r < rounds; r++) {
            t = left ^ (mix(right ^ keys[r]) & mask);
            left = right;
            right = t;
        }
    }
    return (left << half) | right;
}

/* walk(positions, out, n, half, keys, inverse): out[i] = the permutation of positions[i]. */
static PyObject *walk(PyObject *self, PyObject *args) {
    Py_buffer in, out, keys;
    unsigned long long n;
    int half, inverse;
    if (!PyArg_ParseTuple(args, "y*w*Kiy*p", &in, &out, &n, &half, &keys, &inverse))
        return NULL;
    PyObject *result = NULL;
    if (in.len != out.len || in.len % 8 || keys.len % 8 || half < 1 || half > 31) {
        PyErr_SetString(PyExc_ValueError,
                        "walk needs int64 positions and out of one length, uint64 keys, "
                        "and 1 <= half <= 31");
        goto done;
    }
    const int64_t *src = (const int64_t *)in.buf;
    int64_t *dst = (int64_t *)out.buf;
    const uint64_t *k = (const uint64_t *)keys.buf;
    Py_ssize_t count = in.len / 8, rounds = keys.len / 8, bad = -1;
    uint64_t mask = (1ULL << half) - 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t x = (uint64_t)src[i];
        if (x >= n) { /* its cycle need not come back inside [0, n): refuse it */
            bad = i;
            break;
        }
        do {
            x = network(x, k, rounds, half, mask, inverse);
        } while (x >= n);
        dst[i] = (int64_t)x;
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "position %lld is outside [0, %llu)",
                     (long long)src[bad], n);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    PyBuffer_Release(&keys);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS,
     "walk(positions, out, n, half, keys, inverse): the keyed Feistel permutation of "
     "[0, n) at each of positions (int64), into out (int64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_feistel", "The samplers' keyed permutation, compiled.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__feistel(void) { return PyModule_Create(&module); }
