/* Row gathers for shuffle mode `cache`: out[c][i] = sources[c][positions[i]].
 *
 * numpy's `take` copies one row at a time and waits on memory for each: rows
 * picked at random from a cache of hundreds of MB are nowhere near the CPU.
 * This loop asks for the rows a few positions ahead (software prefetch), so
 * several rows are in flight at once, and copies every column's row in the same
 * pass. On the benchmark's 1M x 524-byte rows it gathered ~1.4x faster than
 * numpy (two threads each way), and a cache-mode epoch, permutation included,
 * ran ~1.2x faster. Without a C compiler the package installs without it and
 * the numpy path runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 0)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Rows ahead to prefetch: measured 8-16 best for 0.5 KB rows; 8 keeps small
 * gathers useful too. */
#define AHEAD 8
#define LINE 64

typedef struct {
    Py_buffer view;
    Py_ssize_t rows;
    Py_ssize_t row_bytes;
} Column;

static void release(Column *cols, Py_ssize_t n) {
    for (Py_ssize_t c = 0; c < n; c++) PyBuffer_Release(&cols[c].view);
}

/* A C-contiguous buffer of at least one dimension, as rows of row_bytes. */
static int open_column(PyObject *obj, int flags, Column *col, const char *what) {
    if (PyObject_GetBuffer(obj, &col->view, flags | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (col->view.ndim < 1) {
        PyBuffer_Release(&col->view);
        PyErr_Format(PyExc_ValueError, "%s must have at least one dimension", what);
        return -1;
    }
    col->rows = col->view.shape[0];
    col->row_bytes = col->rows ? col->view.len / col->rows : 0;
    return 0;
}

static PyObject *take_rows(PyObject *self, PyObject *args) {
    PyObject *sources, *outputs, *positions_obj;
    if (!PyArg_ParseTuple(args, "O!OO!:take_rows", &PyTuple_Type, &sources, &positions_obj,
                          &PyTuple_Type, &outputs))
        return NULL;
    (void)self;
    Py_ssize_t ncols = PyTuple_GET_SIZE(sources);
    if (PyTuple_GET_SIZE(outputs) != ncols) {
        PyErr_SetString(PyExc_ValueError, "take_rows needs one output per source");
        return NULL;
    }

    Py_buffer positions;
    if (PyObject_GetBuffer(positions_obj, &positions, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    const char *fmt = positions.format;
    if (positions.ndim != 1 || positions.itemsize != 8 ||
        !(strcmp(fmt, "q") == 0 || strcmp(fmt, "l") == 0 || strcmp(fmt, "<q") == 0 ||
          strcmp(fmt, "<l") == 0 || strcmp(fmt, "=q") == 0 || strcmp(fmt, "=l") == 0)) {
        PyBuffer_Release(&positions);
        PyErr_SetString(PyExc_TypeError, "positions must be a 1-D array of int64");
        return NULL;
    }
    const int64_t *idx = (const int64_t *)positions.buf;
    Py_ssize_t n = positions.shape[0];

    Column *src = PyMem_Calloc(ncols ? ncols : 1, sizeof(Column));
    Column *dst = PyMem_Calloc(ncols ? ncols : 1, sizeof(Column));
    Py_ssize_t opened_src = 0, opened_dst = 0;
    PyObject *result = NULL;
    if (src == NULL || dst == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < ncols; c++) {
        if (open_column(PyTuple_GET_ITEM(sources, c), PyBUF_SIMPLE, &src[c], "a source") < 0)
            goto done;
        opened_src++;
        if (open_column(PyTuple_GET_ITEM(outputs, c), PyBUF_WRITABLE, &dst[c], "an output") < 0)
            goto done;
        opened_dst++;
        if (dst[c].rows != n) {
            PyErr_Format(PyExc_ValueError, "output %zd has %zd rows for %zd positions", c,
                         dst[c].rows, n);
            goto done;
        }
        if (n && dst[c].row_bytes != src[c].row_bytes) {
            PyErr_Format(PyExc_ValueError, "output %zd rows are %zd bytes, its source's %zd", c,
                         dst[c].row_bytes, src[c].row_bytes);
            goto done;
        }
    }
    /* Every source has the same rows (the cache's columns); a position outside
     * them is refused before anything is copied. */
    for (Py_ssize_t c = 1; c < ncols; c++) {
        if (src[c].rows != src[0].rows) {
            PyErr_SetString(PyExc_ValueError, "sources must have the same number of rows");
            goto done;
        }
    }
    Py_ssize_t rows = ncols ? src[0].rows : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= rows) {
            PyErr_Format(PyExc_IndexError, "position %lld outside the %zd cached rows",
                         (long long)idx[i], rows);
            goto done;
        }
    }

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            int64_t ahead = idx[i + AHEAD];
            for (Py_ssize_t c = 0; c < ncols; c++) {
                const char *row = (const char *)src[c].view.buf + ahead * src[c].row_bytes;
                for (Py_ssize_t b = 0; b < src[c].row_bytes; b += LINE) PREFETCH(row + b);
            }
        }
        for (Py_ssize_t c = 0; c < ncols; c++) {
            Py_ssize_t w = src[c].row_bytes;
            memcpy((char *)dst[c].view.buf + i * w, (const char *)src[c].view.buf + idx[i] * w,
                   (size_t)w);
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);

done:
    if (src) release(src, opened_src);
    if (dst) release(dst, opened_dst);
    PyMem_Free(src);
    PyMem_Free(dst);
    PyBuffer_Release(&positions);
    return result;
}

static PyMethodDef methods[] = {
    {"take_rows", take_rows, METH_VARARGS,
     "take_rows(sources, positions, outputs): outputs[c][i] = sources[c][positions[i]].\n\n"
     "sources, outputs: tuples of C-contiguous arrays (outputs writable, len(positions) rows,\n"
     "rows as wide as their source's); positions: 1-D int64. Releases the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_gather", "Prefetching row gathers for the shuffle cache.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gather(void) { return PyModule_Create(&module); }
