// graft_onnx.h — a read-only C view of a parsed ONNX ModelProto.
//
// The ONNX protobuf classes are C++; Swift reads them only through these extern "C" accessors.
// Every pointer returned (strings, arrays, nested handles) is owned by the gx_model and stays
// valid until gx_model_free. Index arguments are checked: out of range gives NULL / 0.
#ifndef GRAFT_ONNX_H
#define GRAFT_ONNX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gx_model gx_model;     // owns an onnx::ModelProto
typedef struct gx_graph gx_graph;     // onnx::GraphProto
typedef struct gx_node gx_node;       // onnx::NodeProto
typedef struct gx_value gx_value;     // onnx::ValueInfoProto
typedef struct gx_tensor gx_tensor;   // onnx::TensorProto
typedef struct gx_attr gx_attr;       // onnx::AttributeProto

/// Parses `size` bytes as a ModelProto. On failure returns NULL and writes a message into `err`.
gx_model *gx_model_parse(const void *data, size_t size, char *err, size_t err_size);
void gx_model_free(gx_model *model);

int64_t gx_model_ir_version(const gx_model *m);
const char *gx_model_producer_name(const gx_model *m);
const char *gx_model_producer_version(const gx_model *m);
size_t gx_model_opset_count(const gx_model *m);
const char *gx_model_opset_domain(const gx_model *m, size_t i);
int64_t gx_model_opset_version(const gx_model *m, size_t i);
size_t gx_model_metadata_count(const gx_model *m);
const char *gx_model_metadata_key(const gx_model *m, size_t i);
const char *gx_model_metadata_value(const gx_model *m, size_t i);
size_t gx_model_function_count(const gx_model *m);
const gx_graph *gx_model_graph(const gx_model *m);   // NULL when the model has no graph

const char *gx_graph_name(const gx_graph *g);
size_t gx_graph_input_count(const gx_graph *g);
const gx_value *gx_graph_input(const gx_graph *g, size_t i);
size_t gx_graph_output_count(const gx_graph *g);
const gx_value *gx_graph_output(const gx_graph *g, size_t i);
size_t gx_graph_value_info_count(const gx_graph *g);
const gx_value *gx_graph_value_info(const gx_graph *g, size_t i);
size_t gx_graph_initializer_count(const gx_graph *g);
const gx_tensor *gx_graph_initializer(const gx_graph *g, size_t i);
size_t gx_graph_sparse_initializer_count(const gx_graph *g);
size_t gx_graph_node_count(const gx_graph *g);
const gx_node *gx_graph_node(const gx_graph *g, size_t i);

const char *gx_value_name(const gx_value *v);
/// 0 when the value's type is not a tensor type or is missing.
int32_t gx_value_elem_type(const gx_value *v);
/// -1 when no shape is recorded, else the rank.
int64_t gx_value_rank(const gx_value *v);
/// Dim i: returns 1 and writes `*value` for a fixed dim, 2 and writes `*param` for a symbolic
/// dim, 0 for an unknown dim.
int gx_value_dim(const gx_value *v, size_t i, int64_t *value, const char **param);

const char *gx_node_name(const gx_node *n);
const char *gx_node_op_type(const gx_node *n);
const char *gx_node_domain(const gx_node *n);
size_t gx_node_input_count(const gx_node *n);
const char *gx_node_input(const gx_node *n, size_t i);
size_t gx_node_output_count(const gx_node *n);
const char *gx_node_output(const gx_node *n, size_t i);
size_t gx_node_attr_count(const gx_node *n);
const gx_attr *gx_node_attr(const gx_node *n, size_t i);
/// Node metadata_props (ONNX IR 10; read from protobuf's unknown fields, hence the model).
size_t gx_node_metadata_count(const gx_model *m, const gx_node *n);
const char *gx_node_metadata_key(const gx_model *m, const gx_node *n, size_t i);
const char *gx_node_metadata_value(const gx_model *m, const gx_node *n, size_t i);

/// Attribute type codes are onnx::AttributeProto::AttributeType (1 FLOAT, 2 INT, 3 STRING,
/// 4 TENSOR, 5 GRAPH, 6 FLOATS, 7 INTS, 8 STRINGS, ...). A proto without a type set reports 0.
const char *gx_attr_name(const gx_attr *a);
int32_t gx_attr_type(const gx_attr *a);
float gx_attr_f(const gx_attr *a);
int64_t gx_attr_i(const gx_attr *a);
const char *gx_attr_s(const gx_attr *a, size_t *len);
const gx_tensor *gx_attr_t(const gx_attr *a);    // NULL when absent
size_t gx_attr_floats_count(const gx_attr *a);
const float *gx_attr_floats(const gx_attr *a);
size_t gx_attr_ints_count(const gx_attr *a);
const int64_t *gx_attr_ints(const gx_attr *a);
size_t gx_attr_strings_count(const gx_attr *a);
const char *gx_attr_string(const gx_attr *a, size_t i, size_t *len);
const char *gx_attr_ref_attr_name(const gx_attr *a);

const char *gx_tensor_name(const gx_tensor *t);
int32_t gx_tensor_data_type(const gx_tensor *t);
size_t gx_tensor_dims_count(const gx_tensor *t);
int64_t gx_tensor_dim(const gx_tensor *t, size_t i);
/// 1 when the tensor's data lives in an external file (data_location == EXTERNAL).
int gx_tensor_is_external(const gx_tensor *t);
size_t gx_tensor_external_count(const gx_tensor *t);
const char *gx_tensor_external_key(const gx_tensor *t, size_t i);
const char *gx_tensor_external_value(const gx_tensor *t, size_t i);
/// raw_data: returns 1 when the field is set (possibly empty) and writes pointer and length.
int gx_tensor_raw_data(const gx_tensor *t, const void **data, size_t *len);
size_t gx_tensor_float_count(const gx_tensor *t);
const float *gx_tensor_floats(const gx_tensor *t);
size_t gx_tensor_int32_count(const gx_tensor *t);
const int32_t *gx_tensor_int32s(const gx_tensor *t);
size_t gx_tensor_int64_count(const gx_tensor *t);
const int64_t *gx_tensor_int64s(const gx_tensor *t);
size_t gx_tensor_double_count(const gx_tensor *t);
const double *gx_tensor_doubles(const gx_tensor *t);
size_t gx_tensor_string_count(const gx_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
