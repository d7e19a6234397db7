// graft.hpp — header-only C++17 RAII wrappers over the C API in graft.h.
//
//   graft::Model model("model.onnx");
//   graft::Session session(model, /*threads=*/2);
//   std::vector<int64_t> ids = {101, 2023, 102};
//   auto outputs = session.run({graft::TensorView::of("input_ids", ids.data(), {1, 3}), ...});
//   const float *h = outputs.at("last_hidden_state").data<float>();
//
// Handles are move-only; failures throw graft::Error carrying the graft_status and the
// library's message. Thread safety is the C API's: a Model may be shared by any threads
// (share it by reference, or keep it alive in a std::shared_ptr); a Session is used by one
// thread at a time. Link with libgraft (pkg-config --cflags --libs graft).
#ifndef GRAFT_HPP
#define GRAFT_HPP

#include <graft.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace graft {

/// A failed call: the C status and the library's message for it.
class Error : public std::runtime_error {
public:
    Error(graft_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    graft_status status() const noexcept { return status_; }

private:
    graft_status status_;
};

namespace detail {
inline void check(graft_status s) {
    if (s != GRAFT_STATUS_OK)
        throw Error(s, std::string(graft_status_string(s)) + ": " + graft_last_error());
}
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr graft_dtype value = GRAFT_DTYPE_FLOAT32; };
template <> struct dtype_of<int64_t> { static constexpr graft_dtype value = GRAFT_DTYPE_INT64; };
template <> struct dtype_of<int32_t> { static constexpr graft_dtype value = GRAFT_DTYPE_INT32; };
template <> struct dtype_of<uint8_t> { static constexpr graft_dtype value = GRAFT_DTYPE_UINT8; };
template <> struct dtype_of<int8_t> { static constexpr graft_dtype value = GRAFT_DTYPE_INT8; };
template <> struct dtype_of<bool> { static constexpr graft_dtype value = GRAFT_DTYPE_BOOL; };
}  // namespace detail

/// The library's version string and ABI version.
inline std::string version() { return graft_version(); }
inline uint32_t abi_version() { return graft_abi_version(); }

/// One declared dimension: a fixed size, or a symbol ("batch"), or unknown (size -1, no symbol).
struct Dim {
    int64_t size = -1;
    std::optional<std::string> symbol;
};

/// A declared model input or output.
struct ValueInfo {
    std::string name;
    graft_dtype dtype = 0;
    /// Declared dimensions; std::nullopt when the file records no shape.
    std::optional<std::vector<Dim>> dims;
};

/// A non-owning view of caller memory used as a run input (read in place, never copied).
struct TensorView {
    std::string name;
    graft_dtype dtype = 0;
    std::vector<int64_t> shape;
    const void *data = nullptr;
    size_t byte_size = 0;

    template <typename T>
    static TensorView of(std::string name, const T *data, std::vector<int64_t> shape) {
        size_t count = 1;
        for (int64_t d : shape) count *= static_cast<size_t>(d);
        return TensorView{std::move(name), detail::dtype_of<T>::value, std::move(shape), data,
                          count * sizeof(T)};
    }
};

namespace detail {
/// graft_tensor descriptors of views (valid while the views live).
inline std::vector<graft_tensor> views(const std::vector<TensorView> &inputs) {
    std::vector<graft_tensor> in;
    in.reserve(inputs.size());
    for (const TensorView &v : inputs)
        in.push_back(graft_tensor{sizeof(graft_tensor), v.dtype, v.name.c_str(), v.shape.size(),
                                  v.shape.data(), const_cast<void *>(v.data), v.byte_size});
    return in;
}
}  // namespace detail

/// An output tensor owning its bytes.
class Tensor {
public:
    Tensor() = default;
    Tensor(graft_dtype dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
        size_t count = 1;
        for (int64_t d : shape_) count *= static_cast<size_t>(d);
        bytes_.resize(count * graft_dtype_size(dtype));
    }
    graft_dtype dtype() const noexcept { return dtype_; }
    const std::vector<int64_t> &shape() const noexcept { return shape_; }
    size_t byte_size() const noexcept { return bytes_.size(); }
    size_t count() const noexcept { return graft_dtype_size(dtype_) ? bytes_.size() / graft_dtype_size(dtype_) : 0; }
    void *raw() noexcept { return bytes_.data(); }
    const void *raw() const noexcept { return bytes_.data(); }
    /// Typed access; throws graft::Error when T does not match the dtype.
    template <typename T> const T *data() const {
        if (detail::dtype_of<T>::value != dtype_)
            throw Error(GRAFT_STATUS_INVALID_ARGUMENT, "tensor element type does not match");
        return reinterpret_cast<const T *>(bytes_.data());
    }

private:
    graft_dtype dtype_ = 0;
    std::vector<int64_t> shape_;
    std::vector<unsigned char> bytes_;   // operator new alignment (16) covers every dtype
};

/// A loaded model (graft_model). Move-only; shareable across threads by reference.
class Model {
public:
    explicit Model(const std::string &path, bool external_data = true) {
        graft_model_options *opts = nullptr;
        detail::check(graft_model_options_create(&opts));
        graft_status s = graft_model_options_set_external_data(opts, external_data ? 1 : 0);
        if (s == GRAFT_STATUS_OK) s = graft_model_load(path.c_str(), opts, &handle_);
        graft_model_options_free(opts);
        detail::check(s);
    }
    /// Loads from bytes in memory (not retained).
    static Model from_memory(const void *data, size_t size) {
        Model m;
        detail::check(graft_model_load_from_memory(data, size, nullptr, &m.handle_));
        return m;
    }
    ~Model() { graft_model_free(handle_); }
    Model(Model &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Model &operator=(Model &&other) noexcept {
        if (this != &other) {
            graft_model_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    std::vector<ValueInfo> inputs() const { return values(false); }
    std::vector<ValueInfo> outputs() const { return values(true); }
    graft_model *get() const noexcept { return handle_; }

private:
    Model() = default;
    std::vector<ValueInfo> values(bool output) const {
        size_t n = 0;
        detail::check(output ? graft_model_output_count(handle_, &n) : graft_model_input_count(handle_, &n));
        std::vector<ValueInfo> result;
        for (size_t i = 0; i < n; i++) {
            graft_value_info info;
            info.struct_size = sizeof info;
            detail::check(output ? graft_model_output_info(handle_, i, &info)
                                 : graft_model_input_info(handle_, i, &info));
            ValueInfo v{info.name, info.dtype, std::nullopt};
            if (info.rank >= 0) {
                std::vector<Dim> dims;
                for (int64_t a = 0; a < info.rank; a++) {
                    Dim d;
                    const char *symbol = nullptr;
                    detail::check(output ? graft_model_output_dim(handle_, i, size_t(a), &d.size, &symbol)
                                         : graft_model_input_dim(handle_, i, size_t(a), &d.size, &symbol));
                    if (symbol) d.symbol = symbol;
                    dims.push_back(d);
                }
                v.dims = std::move(dims);
            }
            result.push_back(std::move(v));
        }
        return result;
    }
    graft_model *handle_ = nullptr;
};

/// An adapter (graft_adapter) loaded for one model by the plugin that claims its path.
/// Copyable handle semantics are avoided: move-only like the others. Sessions keep the
/// adapters they use alive, so destroying this wrapper while bound is safe.
class Adapter {
public:
    Adapter(const Model &model, const std::string &path) {
        detail::check(graft_adapter_load(model.get(), path.c_str(), &handle_));
    }
    ~Adapter() { graft_adapter_free(handle_); }
    Adapter(Adapter &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Adapter &operator=(Adapter &&other) noexcept {
        if (this != &other) {
            graft_adapter_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Adapter(const Adapter &) = delete;
    Adapter &operator=(const Adapter &) = delete;

    std::string name() const { return graft_adapter_name(handle_); }
    graft_adapter *get() const noexcept { return handle_; }

    /// The index of the router at the site named `site` (module name or a '.'-suffix of it),
    /// for the routing controls of `Routing`.
    size_t router(const std::string &site) const {
        size_t index = 0;
        detail::check(graft_adapter_find_router(handle_, site.c_str(), &index));
        return index;
    }

    /// The auxiliary input this adapter's generator reads ("image_features" for VLoRA), or
    /// std::nullopt for an adapter without a generator.
    std::optional<std::string> aux_input() const {
        const char *name = graft_adapter_aux_input(handle_);
        return name ? std::optional<std::string>(name) : std::nullopt;
    }

    /// A request adapter: this adapter's generator run on one image's auxiliary tensors
    /// (graft_adapter_generate); bind it or name it per row for as long as the request lasts.
    Adapter generate(const std::vector<TensorView> &aux, int threads = 1) const {
        std::vector<graft_tensor> t = detail::views(aux);
        graft_adapter *out = nullptr;
        detail::check(graft_adapter_generate(handle_, t.data(), t.size(), threads, &out));
        return Adapter(out);
    }

private:
    explicit Adapter(graft_adapter *handle) noexcept : handle_(handle) {}
    graft_adapter *handle_ = nullptr;
};

/// Loads an adapter plugin shared object (plugins beside libgraft.so and in GRAFT_PLUGIN_PATH
/// are found automatically).
inline void load_plugin(const std::string &path) { detail::check(graft_plugin_load(path.c_str())); }

/// One router evaluation of a run with a record (graft_routing_entry, copied).
struct RoutingDecision {
    std::string adapter;
    uint32_t router = 0;
    size_t site = 0, tokens = 0, experts = 0;
    std::vector<float> weights;   // [tokens x experts]; an expert was chosen when its weight != 0
};

/// Per-request control of routed experts (docs/ADAPTERS.md, "Controlling routed experts"):
/// allow / deny / force masks and routing overrides per (adapter, router), and a record of the
/// decisions of the runs made with it. Pass it to Session::run(inputs, routing). Move-only.
class Routing {
public:
    Routing() { detail::check(graft_run_options_create(&options_)); }
    ~Routing() {
        graft_run_options_free(options_);
        graft_routing_record_free(record_);
    }
    Routing(Routing &&other) noexcept
        : options_(std::exchange(other.options_, nullptr)), record_(std::exchange(other.record_, nullptr)) {}
    Routing &operator=(Routing &&other) noexcept {
        if (this != &other) {
            graft_run_options_free(options_);
            graft_routing_record_free(record_);
            options_ = std::exchange(other.options_, nullptr);
            record_ = std::exchange(other.record_, nullptr);
        }
        return *this;
    }
    Routing(const Routing &) = delete;
    Routing &operator=(const Routing &) = delete;

    /// The router chooses among `experts` only (GRAFT_EXPERTS_ALLOW); empty clears the mask.
    Routing &allow(const Adapter &a, size_t router, const std::vector<size_t> &experts) { return mask(a, router, GRAFT_EXPERTS_ALLOW, experts); }
    /// The router never chooses `experts` (GRAFT_EXPERTS_DENY); empty clears the mask.
    Routing &deny(const Adapter &a, size_t router, const std::vector<size_t> &experts) { return mask(a, router, GRAFT_EXPERTS_DENY, experts); }
    /// Each of `experts` gets weight 1 on every token, the router bypassed (GRAFT_EXPERTS_FORCE).
    Routing &force(const Adapter &a, size_t router, const std::vector<size_t> &experts) { return mask(a, router, GRAFT_EXPERTS_FORCE, experts); }

    /// Caller weights [tokens x experts] replace the router's output; empty clears it.
    Routing &override_weights(const Adapter &a, size_t router, const std::vector<float> &weights, size_t tokens, size_t experts) {
        detail::check(graft_run_options_set_routing(options_, a.get(), router, weights.empty() ? nullptr : weights.data(),
                                                    tokens, experts));
        return *this;
    }

    /// Makes the runs with this object record their routing decisions (see decisions()).
    Routing &record() {
        if (!record_) {
            detail::check(graft_routing_record_create(&record_));
            detail::check(graft_run_options_set_routing_record(options_, record_));
        }
        return *this;
    }

    /// The decisions of the last run made with this object (record() first; empty before).
    std::vector<RoutingDecision> decisions() const {
        std::vector<RoutingDecision> out;
        if (!record_) return out;
        size_t n = 0;
        detail::check(graft_routing_record_count(record_, &n));
        for (size_t i = 0; i < n; i++) {
            graft_routing_entry e;
            e.struct_size = sizeof e;
            detail::check(graft_routing_record_entry(record_, i, &e));
            out.push_back(RoutingDecision{e.adapter, e.router, e.site, e.tokens, e.experts,
                                          std::vector<float>(e.weights, e.weights + e.tokens * e.experts)});
        }
        return out;
    }

    const graft_run_options *get() const noexcept { return options_; }

private:
    /// A mask of E bytes from expert indices: E is the router's expert count, from the adapter.
    Routing &mask(const Adapter &a, size_t router, int32_t mode, const std::vector<size_t> &experts) {
        if (experts.empty()) {
            detail::check(graft_run_options_set_experts(options_, a.get(), router, mode, nullptr, 0));
            return *this;
        }
        size_t site = 0, count = 0;
        detail::check(graft_adapter_router_info(a.get(), router, &site, &count));
        std::vector<uint8_t> m(count, 0);
        for (size_t e : experts) {
            if (e >= count)
                throw Error(GRAFT_STATUS_INVALID_ARGUMENT, "expert " + std::to_string(e) + " is out of range: router " +
                                                               std::to_string(router) + " of adapter '" + a.name() +
                                                               "' has " + std::to_string(count) + " experts");
            m[e] = 1;
        }
        detail::check(graft_run_options_set_experts(options_, a.get(), router, mode, m.data(), m.size()));
        return *this;
    }

    graft_run_options *options_ = nullptr;
    graft_routing_record *record_ = nullptr;
};

/// A session (graft_session) over a model; the model must stay alive while the session is
/// used through this wrapper (the C library keeps the model's memory alive regardless).
/// Move-only; one thread at a time.
class Session {
public:
    explicit Session(const Model &model, int threads = 1) {
        graft_session_options *opts = nullptr;
        detail::check(graft_session_options_create(&opts));
        graft_status s = graft_session_options_set_threads(opts, threads);
        if (s == GRAFT_STATUS_OK) s = graft_session_create(model.get(), opts, &handle_);
        graft_session_options_free(opts);
        detail::check(s);
        size_t n = 0;
        detail::check(graft_model_output_count(model.get(), &n));
        for (size_t i = 0; i < n; i++) {
            graft_value_info info;
            info.struct_size = sizeof info;
            detail::check(graft_model_output_info(model.get(), i, &info));
            output_names_.emplace_back(info.name);
        }
    }
    ~Session() { graft_session_free(handle_); }
    Session(Session &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), output_names_(std::move(other.output_names_)) {}
    Session &operator=(Session &&other) noexcept {
        if (this != &other) {
            graft_session_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            output_names_ = std::move(other.output_names_);
        }
        return *this;
    }
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    /// Binds adapters with scales for every following run (empty: the base model). `merged`
    /// folds low-rank terms into session-private weights.
    void set_adapters(const std::vector<std::pair<const Adapter *, float>> &adapters, bool merged = false) {
        std::vector<graft_adapter *> handles;
        std::vector<float> scales;
        for (const auto &a : adapters) {
            handles.push_back(a.first->get());
            scales.push_back(a.second);
        }
        detail::check(graft_session_set_adapters(handle_, handles.data(), scales.data(), handles.size(), merged ? 1 : 0));
    }

    /// Runs with one adapter per batch row (nullptr: the base model), for this run only.
    std::map<std::string, Tensor> run(const std::vector<TensorView> &inputs, const std::vector<const Adapter *> &row_adapters) {
        OwnedOptions opts = make_options();
        std::vector<graft_adapter *> rows = handles(row_adapters);
        detail::check(graft_run_options_set_row_adapters(opts.get(), rows.data(), rows.size()));
        return run_with(inputs, opts.get());
    }

    /// Runs on `inputs` (every declared input, by name) and returns every output by name.
    std::map<std::string, Tensor> run(const std::vector<TensorView> &inputs) { return run_with(inputs, nullptr); }

    /// Runs with per-request expert routing control (and a record, when `routing.record()`).
    std::map<std::string, Tensor> run(const std::vector<TensorView> &inputs, const Routing &routing) {
        return run_with(inputs, routing.get());
    }

    /// Runs with auxiliary tensors for generator adapters (VLoRA: {"image_features", [N_v, d_v]}
    /// for every row, or [batch, N_v, d_v]), generated weights applied as `merge`
    /// (GRAFT_MERGE_*), and optionally one adapter per row (nullptr: the base model).
    std::map<std::string, Tensor> run_aux(const std::vector<TensorView> &inputs, const std::vector<TensorView> &aux,
                                          int32_t merge = GRAFT_MERGE_AUTO,
                                          const std::vector<const Adapter *> &row_adapters = {}) {
        OwnedOptions opts = make_options();
        std::vector<graft_tensor> t = detail::views(aux);
        std::vector<graft_adapter *> rows = handles(row_adapters);
        detail::check(graft_run_options_set_aux(opts.get(), t.data(), t.size()));
        detail::check(graft_run_options_set_merge(opts.get(), merge));
        if (!rows.empty()) detail::check(graft_run_options_set_row_adapters(opts.get(), rows.data(), rows.size()));
        return run_with(inputs, opts.get());
    }

private:
    /// Run options freed on every path out of a run (graft_run_options_free accepts NULL).
    using OwnedOptions = std::unique_ptr<graft_run_options, void (*)(graft_run_options *)>;
    static OwnedOptions make_options() {
        graft_run_options *opts = nullptr;
        detail::check(graft_run_options_create(&opts));
        return OwnedOptions(opts, graft_run_options_free);
    }
    static std::vector<graft_adapter *> handles(const std::vector<const Adapter *> &adapters) {
        std::vector<graft_adapter *> out;
        for (const Adapter *a : adapters) out.push_back(a ? a->get() : nullptr);
        return out;
    }

    std::map<std::string, Tensor> run_with(const std::vector<TensorView> &inputs, const graft_run_options *options) {
        std::vector<graft_tensor> in = views(inputs);
        std::vector<Tensor> results;
        std::vector<graft_tensor> out;
        for (size_t k = 0; k < output_names_.size(); k++) {
            graft_dtype dtype = 0;
            size_t rank = 0;
            detail::check(graft_session_output_shape(handle_, in.data(), in.size(), k, &dtype, &rank, nullptr, 0));
            std::vector<int64_t> shape(rank);
            detail::check(graft_session_output_shape(handle_, in.data(), in.size(), k, &dtype, &rank,
                                                     shape.data(), shape.size()));
            results.emplace_back(dtype, std::move(shape));
        }
        for (Tensor &t : results)
            out.push_back(graft_tensor{sizeof(graft_tensor), t.dtype(), nullptr, t.shape().size(),
                                       t.shape().data(), t.raw(), t.byte_size()});
        detail::check(graft_session_run(handle_, in.data(), in.size(), out.data(), out.size(), options));
        std::map<std::string, Tensor> named;
        for (size_t k = 0; k < results.size(); k++) named.emplace(output_names_[k], std::move(results[k]));
        return named;
    }

public:
    /// Runs writing into caller buffers (see graft_session_run); no allocation by the wrapper
    /// beyond the descriptor arrays.
    void run_into(const std::vector<TensorView> &inputs, std::vector<graft_tensor> &outputs) {
        std::vector<graft_tensor> in = views(inputs);
        detail::check(graft_session_run(handle_, in.data(), in.size(), outputs.data(), outputs.size(), nullptr));
    }

    graft_session *get() const noexcept { return handle_; }

private:
    static std::vector<graft_tensor> views(const std::vector<TensorView> &inputs) { return detail::views(inputs); }
    graft_session *handle_ = nullptr;
    std::vector<std::string> output_names_;
};

}  // namespace graft

#endif  // GRAFT_HPP
