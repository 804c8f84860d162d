/* The cycle's inputs as columns by tree position, compiled (libs/domain/physical_view.py and cycle.py).
 *
 * Why C: a large depot's cycle reads tens of thousands of telemetry and demand records. Placing them by
 * tree position and reading the allocation's request fields out of them are one pass each over
 * records scattered in memory; in Python (a comprehension, or five C-level maps of attribute getters,
 * one per field) those passes cost about as much as the allocation itself. Nothing is decided here:
 * both functions answer None when the input is anything but the plain case (a record of a node not in
 * the tree, two records for one node, a number beyond 64 bits), and the caller's Python code, which
 * states the rule, answers instead.
 *
 *   placed(records, position, n) -> list | None
 *       a list of n items: at position[record.node_id] the record, None elsewhere.
 *   request_columns(wish_at, positions, id_rank, next_of) -> (node, requested_watts, min_watts, weight,
 *                                                             priority, rank) | None
 *       for each position p: next_of[p] (p + 1), the fields of wish_at[p] clamped as the cycle clamps
 *       them (requested and minimum at 0, weight at 1), and id_rank[p]. The ints are the records' own
 *       where they need no clamping (making new ones was most of the cost).
 *
 * Pure: no I/O, no global state beyond the interned attribute names; the GIL is held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>

static PyObject *NODE_ID, *REQUESTED, *MINIMUM, *WEIGHT, *PRIORITY;

static PyObject *placed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *records, *position;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OO!n", &records, &PyDict_Type, &position, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n: a number of nodes");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(records, "records: expected a sequence");
    if (!fast) return NULL;
    PyObject *out = PyList_New(n);
    if (!out) {
        Py_DECREF(fast);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(out, i, Py_None);
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t r = 0; r < m; r++) {
        PyObject *node_id = PyObject_GetAttr(items[r], NODE_ID);
        if (!node_id) goto fail;
        PyObject *at = PyDict_GetItemWithError(position, node_id); /* borrowed */
        Py_DECREF(node_id);
        if (!at) {
            if (PyErr_Occurred()) goto fail;
            goto plain_case_only; /* a node not in the tree */
        }
        Py_ssize_t pos = PyLong_AsSsize_t(at);
        if (pos == -1 && PyErr_Occurred()) goto fail;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        if (PyList_GET_ITEM(out, pos) != Py_None) goto plain_case_only; /* two records for one node */
        Py_DECREF(Py_None);
        Py_INCREF(items[r]);
        PyList_SET_ITEM(out, pos, items[r]);
    }
    Py_DECREF(fast);
    return out;
plain_case_only:
    Py_DECREF(fast);
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(fast);
    Py_DECREF(out);
    return NULL;
}

/* The attribute ``name`` of ``obj``, an int, raised to ``floor`` if below it: a new reference (the
 * attribute's own int when it is not raised), NULL with an exception set, or Py_None (a new reference)
 * when the int is beyond 64 bits. */
static PyObject *field(PyObject *obj, PyObject *name, long long floor) {
    PyObject *x = PyObject_GetAttr(obj, name);
    if (!x) return NULL;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(x);
        return NULL;
    }
    if (overflow) {
        Py_DECREF(x);
        Py_RETURN_NONE;
    }
    if (v < floor) {
        Py_DECREF(x);
        return PyLong_FromLongLong(floor);
    }
    return x;
}

static PyObject *request_columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *wish_at, *positions, *id_rank, *next_of;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyList_Type, &wish_at, &PyList_Type, &positions, &PyList_Type, &id_rank,
                          &PyList_Type, &next_of))
        return NULL;
    Py_ssize_t k = PyList_GET_SIZE(positions), n = PyList_GET_SIZE(wish_at);
    if (PyList_GET_SIZE(id_rank) != n || PyList_GET_SIZE(next_of) != n) {
        PyErr_SetString(PyExc_ValueError, "wish_at, id_rank and next_of of different lengths");
        return NULL;
    }
    PyObject *cols[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    for (int c = 0; c < 6; c++) {
        cols[c] = PyList_New(k);
        if (!cols[c]) goto fail;
    }
    PyObject *names[4] = {REQUESTED, MINIMUM, WEIGHT, PRIORITY};
    const long long floor[4] = {0, 0, 1, LLONG_MIN}; /* priority as it is */
    for (Py_ssize_t r = 0; r < k; r++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(positions, r));
        if (pos == -1 && PyErr_Occurred()) goto fail;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        PyObject *wish = PyList_GET_ITEM(wish_at, pos);
        for (int f = 0; f < 4; f++) {
            PyObject *v = field(wish, names[f], floor[f]);
            if (!v) goto fail;
            if (v == Py_None) {
                Py_DECREF(v);
                goto plain_case_only;
            }
            PyList_SET_ITEM(cols[f + 1], r, v);
        }
        PyObject *node = PyList_GET_ITEM(next_of, pos), *rank = PyList_GET_ITEM(id_rank, pos);
        Py_INCREF(node);
        Py_INCREF(rank);
        PyList_SET_ITEM(cols[0], r, node);
        PyList_SET_ITEM(cols[5], r, rank);
    }
    return Py_BuildValue("(NNNNNN)", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]);
plain_case_only:
    for (int c = 0; c < 6; c++) Py_XDECREF(cols[c]);
    Py_RETURN_NONE;
fail:
    for (int c = 0; c < 6; c++) Py_XDECREF(cols[c]);
    return NULL;
}

static PyMethodDef methods[] = {
    {"placed", placed, METH_VARARGS,
     "placed(records, position, n) -> list | None: the records by the position of their node_id; None when a"
     " record's node is not in position or two records share a node."},
    {"request_columns", request_columns, METH_VARARGS,
     "request_columns(wish_at, positions, id_rank, next_of) -> six lists | None: the allocation's request columns of"
     " the wishes at the positions; None when a number is beyond 64 bits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_columns",
    .m_doc = "The cycle's inputs as columns by tree position, compiled.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__columns(void) {
    NODE_ID = PyUnicode_InternFromString("node_id");
    REQUESTED = PyUnicode_InternFromString("requested_watts");
    MINIMUM = PyUnicode_InternFromString("min_watts");
    WEIGHT = PyUnicode_InternFromString("weight");
    PRIORITY = PyUnicode_InternFromString("priority");
    if (!NODE_ID || !REQUESTED || !MINIMUM || !WEIGHT || !PRIORITY) return NULL;
    return PyModule_Create(&module);
}
