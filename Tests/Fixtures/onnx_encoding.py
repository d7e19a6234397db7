"""Hand encoding of the few ONNX protobuf messages the test-data scripts need (no onnx package):
Tests/ABI/make_models.py and Tests/Fuzz/make_seeds.py build their tiny models with these."""


def varint(n):
    """Protobuf base-128 varint; negative numbers as 64-bit two's complement (int64 fields)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    """Field `num`: wire 0 encodes the int `payload`, wire 2 the bytes `payload`."""
    key = varint((num << 3) | wire)
    return key + (varint(payload) if wire == 0 else varint(len(payload)) + payload)


def string(num, text):
    return field(num, 2, text.encode())


def dim(v):
    """TensorShapeProto.Dimension: an int is dim_value, a str dim_param."""
    return field(1, 2, field(1, 0, v) if isinstance(v, int) else string(2, v))


def value_info(name, elem, dims):
    """ValueInfoProto of a tensor with element type `elem` and dims."""
    tensor = field(1, 0, elem) + field(2, 2, b"".join(dim(d) for d in dims))
    return string(1, name) + field(2, 2, field(1, 2, tensor))
