// onnx_facade.cpp — implements graft_onnx.h over libonnx_proto's generated ModelProto.
// Opaque C handles are the protobuf messages themselves, reinterpreted; nothing is copied.
#include "graft_onnx.h"

#include <climits>
#include <cstdio>
#include <exception>
#include <new>
#include <onnx/onnx_pb.h>
#include <google/protobuf/unknown_field_set.h>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

using namespace onnx;

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct gx_model {
    ModelProto proto;
    // NodeProto.metadata_props (field 9) postdates libonnx 1.12's schema, so protobuf keeps it
    // as an unknown field; it is decoded once after parsing (the dynamo exporter puts
    // `pkg.torch.onnx.name_scopes` there).
    std::unordered_map<const NodeProto *, KeyValues> nodeMetadata;
};

namespace {
void decodeNodeMetadata(gx_model *m) {
    if (!m->proto.has_graph()) return;
    for (const NodeProto &node : m->proto.graph().node()) {
        const auto &unknown = node.GetReflection()->GetUnknownFields(node);
        for (int i = 0; i < unknown.field_count(); ++i) {
            const auto &field = unknown.field(i);
            if (field.number() != 9 || field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
            StringStringEntryProto entry;
            if (entry.ParseFromString(field.length_delimited()))
                m->nodeMetadata[&node].emplace_back(entry.key(), entry.value());
        }
    }
}
}  // namespace

namespace {
inline const GraphProto *G(const gx_graph *g) { return reinterpret_cast<const GraphProto *>(g); }
inline const NodeProto *N(const gx_node *n) { return reinterpret_cast<const NodeProto *>(n); }
inline const ValueInfoProto *V(const gx_value *v) { return reinterpret_cast<const ValueInfoProto *>(v); }
inline const TensorProto *T(const gx_tensor *t) { return reinterpret_cast<const TensorProto *>(t); }
inline const AttributeProto *A(const gx_attr *a) { return reinterpret_cast<const AttributeProto *>(a); }

template <typename R> inline bool inRange(const R &r, size_t i) { return i < static_cast<size_t>(r.size()); }

void writeError(char *err, size_t size, const char *msg) {
    if (err && size > 0) std::snprintf(err, size, "%s", msg);
}
}  // namespace

extern "C" {

gx_model *gx_model_parse(const void *data, size_t size, char *err, size_t err_size) {
    if (size > static_cast<size_t>(INT_MAX)) {
        writeError(err, err_size, "the file is larger than 2 GiB; protobuf cannot hold it (store the weights as external data)");
        return nullptr;
    }
    try {
        gx_model *m = new gx_model();
        if (!m->proto.ParseFromArray(data, static_cast<int>(size))) {
            delete m;
            writeError(err, err_size, "not a valid ONNX ModelProto (protobuf parse failed: truncated or corrupt file)");
            return nullptr;
        }
        decodeNodeMetadata(m);
        return m;
    } catch (const std::bad_alloc &) {
        writeError(err, err_size, "out of memory while parsing the ONNX protobuf");
    } catch (const std::exception &e) {
        writeError(err, err_size, e.what());
    } catch (...) {
        writeError(err, err_size, "unknown error while parsing the ONNX protobuf");
    }
    return nullptr;
}

void gx_model_free(gx_model *m) { delete m; }

int64_t gx_model_ir_version(const gx_model *m) { return m->proto.ir_version(); }
const char *gx_model_producer_name(const gx_model *m) { return m->proto.producer_name().c_str(); }
const char *gx_model_producer_version(const gx_model *m) { return m->proto.producer_version().c_str(); }
size_t gx_model_opset_count(const gx_model *m) { return m->proto.opset_import_size(); }
const char *gx_model_opset_domain(const gx_model *m, size_t i) {
    return inRange(m->proto.opset_import(), i) ? m->proto.opset_import(int(i)).domain().c_str() : nullptr;
}
int64_t gx_model_opset_version(const gx_model *m, size_t i) {
    return inRange(m->proto.opset_import(), i) ? m->proto.opset_import(int(i)).version() : 0;
}
size_t gx_model_metadata_count(const gx_model *m) { return m->proto.metadata_props_size(); }
const char *gx_model_metadata_key(const gx_model *m, size_t i) {
    return inRange(m->proto.metadata_props(), i) ? m->proto.metadata_props(int(i)).key().c_str() : nullptr;
}
const char *gx_model_metadata_value(const gx_model *m, size_t i) {
    return inRange(m->proto.metadata_props(), i) ? m->proto.metadata_props(int(i)).value().c_str() : nullptr;
}
size_t gx_model_function_count(const gx_model *m) { return m->proto.functions_size(); }
const gx_graph *gx_model_graph(const gx_model *m) {
    return m->proto.has_graph() ? reinterpret_cast<const gx_graph *>(&m->proto.graph()) : nullptr;
}

const char *gx_graph_name(const gx_graph *g) { return G(g)->name().c_str(); }
size_t gx_graph_input_count(const gx_graph *g) { return G(g)->input_size(); }
const gx_value *gx_graph_input(const gx_graph *g, size_t i) {
    return inRange(G(g)->input(), i) ? reinterpret_cast<const gx_value *>(&G(g)->input(int(i))) : nullptr;
}
size_t gx_graph_output_count(const gx_graph *g) { return G(g)->output_size(); }
const gx_value *gx_graph_output(const gx_graph *g, size_t i) {
    return inRange(G(g)->output(), i) ? reinterpret_cast<const gx_value *>(&G(g)->output(int(i))) : nullptr;
}
size_t gx_graph_value_info_count(const gx_graph *g) { return G(g)->value_info_size(); }
const gx_value *gx_graph_value_info(const gx_graph *g, size_t i) {
    return inRange(G(g)->value_info(), i) ? reinterpret_cast<const gx_value *>(&G(g)->value_info(int(i))) : nullptr;
}
size_t gx_graph_initializer_count(const gx_graph *g) { return G(g)->initializer_size(); }
const gx_tensor *gx_graph_initializer(const gx_graph *g, size_t i) {
    return inRange(G(g)->initializer(), i) ? reinterpret_cast<const gx_tensor *>(&G(g)->initializer(int(i))) : nullptr;
}
size_t gx_graph_sparse_initializer_count(const gx_graph *g) { return G(g)->sparse_initializer_size(); }
size_t gx_graph_node_count(const gx_graph *g) { return G(g)->node_size(); }
const gx_node *gx_graph_node(const gx_graph *g, size_t i) {
    return inRange(G(g)->node(), i) ? reinterpret_cast<const gx_node *>(&G(g)->node(int(i))) : nullptr;
}

const char *gx_value_name(const gx_value *v) { return V(v)->name().c_str(); }
int32_t gx_value_elem_type(const gx_value *v) {
    if (!V(v)->has_type() || !V(v)->type().has_tensor_type()) return 0;
    return V(v)->type().tensor_type().elem_type();
}
int64_t gx_value_rank(const gx_value *v) {
    if (!V(v)->has_type() || !V(v)->type().has_tensor_type() || !V(v)->type().tensor_type().has_shape()) return -1;
    return V(v)->type().tensor_type().shape().dim_size();
}
int gx_value_dim(const gx_value *v, size_t i, int64_t *value, const char **param) {
    if (gx_value_rank(v) < 0) return 0;
    const auto &shape = V(v)->type().tensor_type().shape();
    if (!inRange(shape.dim(), i)) return 0;
    const auto &d = shape.dim(int(i));
    if (d.has_dim_value()) { *value = d.dim_value(); return 1; }
    if (d.has_dim_param()) { *param = d.dim_param().c_str(); return 2; }
    return 0;
}

const char *gx_node_name(const gx_node *n) { return N(n)->name().c_str(); }
const char *gx_node_op_type(const gx_node *n) { return N(n)->op_type().c_str(); }
const char *gx_node_domain(const gx_node *n) { return N(n)->domain().c_str(); }
size_t gx_node_input_count(const gx_node *n) { return N(n)->input_size(); }
const char *gx_node_input(const gx_node *n, size_t i) {
    return inRange(N(n)->input(), i) ? N(n)->input(int(i)).c_str() : nullptr;
}
size_t gx_node_output_count(const gx_node *n) { return N(n)->output_size(); }
const char *gx_node_output(const gx_node *n, size_t i) {
    return inRange(N(n)->output(), i) ? N(n)->output(int(i)).c_str() : nullptr;
}
size_t gx_node_attr_count(const gx_node *n) { return N(n)->attribute_size(); }
const gx_attr *gx_node_attr(const gx_node *n, size_t i) {
    return inRange(N(n)->attribute(), i) ? reinterpret_cast<const gx_attr *>(&N(n)->attribute(int(i))) : nullptr;
}
size_t gx_node_metadata_count(const gx_model *m, const gx_node *n) {
    auto it = m->nodeMetadata.find(N(n));
    return it == m->nodeMetadata.end() ? 0 : it->second.size();
}
const char *gx_node_metadata_key(const gx_model *m, const gx_node *n, size_t i) {
    auto it = m->nodeMetadata.find(N(n));
    return it == m->nodeMetadata.end() || i >= it->second.size() ? nullptr : it->second[i].first.c_str();
}
const char *gx_node_metadata_value(const gx_model *m, const gx_node *n, size_t i) {
    auto it = m->nodeMetadata.find(N(n));
    return it == m->nodeMetadata.end() || i >= it->second.size() ? nullptr : it->second[i].second.c_str();
}

const char *gx_attr_name(const gx_attr *a) { return A(a)->name().c_str(); }
int32_t gx_attr_type(const gx_attr *a) { return A(a)->type(); }
float gx_attr_f(const gx_attr *a) { return A(a)->f(); }
int64_t gx_attr_i(const gx_attr *a) { return A(a)->i(); }
const char *gx_attr_s(const gx_attr *a, size_t *len) {
    *len = A(a)->s().size();
    return A(a)->s().data();
}
const gx_tensor *gx_attr_t(const gx_attr *a) {
    return A(a)->has_t() ? reinterpret_cast<const gx_tensor *>(&A(a)->t()) : nullptr;
}
size_t gx_attr_floats_count(const gx_attr *a) { return A(a)->floats_size(); }
const float *gx_attr_floats(const gx_attr *a) { return A(a)->floats().data(); }
size_t gx_attr_ints_count(const gx_attr *a) { return A(a)->ints_size(); }
const int64_t *gx_attr_ints(const gx_attr *a) { return A(a)->ints().data(); }
size_t gx_attr_strings_count(const gx_attr *a) { return A(a)->strings_size(); }
const char *gx_attr_string(const gx_attr *a, size_t i, size_t *len) {
    if (!inRange(A(a)->strings(), i)) { *len = 0; return nullptr; }
    *len = A(a)->strings(int(i)).size();
    return A(a)->strings(int(i)).data();
}
const char *gx_attr_ref_attr_name(const gx_attr *a) { return A(a)->ref_attr_name().c_str(); }

const char *gx_tensor_name(const gx_tensor *t) { return T(t)->name().c_str(); }
int32_t gx_tensor_data_type(const gx_tensor *t) { return T(t)->data_type(); }
size_t gx_tensor_dims_count(const gx_tensor *t) { return T(t)->dims_size(); }
int64_t gx_tensor_dim(const gx_tensor *t, size_t i) { return inRange(T(t)->dims(), i) ? T(t)->dims(int(i)) : 0; }
int gx_tensor_is_external(const gx_tensor *t) {
    return T(t)->has_data_location() && T(t)->data_location() == TensorProto_DataLocation_EXTERNAL;
}
size_t gx_tensor_external_count(const gx_tensor *t) { return T(t)->external_data_size(); }
const char *gx_tensor_external_key(const gx_tensor *t, size_t i) {
    return inRange(T(t)->external_data(), i) ? T(t)->external_data(int(i)).key().c_str() : nullptr;
}
const char *gx_tensor_external_value(const gx_tensor *t, size_t i) {
    return inRange(T(t)->external_data(), i) ? T(t)->external_data(int(i)).value().c_str() : nullptr;
}
int gx_tensor_raw_data(const gx_tensor *t, const void **data, size_t *len) {
    if (!T(t)->has_raw_data()) { *data = nullptr; *len = 0; return 0; }
    *data = T(t)->raw_data().data();
    *len = T(t)->raw_data().size();
    return 1;
}
size_t gx_tensor_float_count(const gx_tensor *t) { return T(t)->float_data_size(); }
const float *gx_tensor_floats(const gx_tensor *t) { return T(t)->float_data().data(); }
size_t gx_tensor_int32_count(const gx_tensor *t) { return T(t)->int32_data_size(); }
const int32_t *gx_tensor_int32s(const gx_tensor *t) { return T(t)->int32_data().data(); }
size_t gx_tensor_int64_count(const gx_tensor *t) { return T(t)->int64_data_size(); }
const int64_t *gx_tensor_int64s(const gx_tensor *t) { return T(t)->int64_data().data(); }
size_t gx_tensor_double_count(const gx_tensor *t) { return T(t)->double_data_size(); }
const double *gx_tensor_doubles(const gx_tensor *t) { return T(t)->double_data().data(); }
size_t gx_tensor_string_count(const gx_tensor *t) { return T(t)->string_data_size(); }

}  // extern "C"
