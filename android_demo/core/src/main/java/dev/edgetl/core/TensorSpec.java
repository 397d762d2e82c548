package dev.edgetl.core;

import java.util.Arrays;
import java.util.Locale;

/**
 * Element type and quantization of one model tensor, as the interpreter reports it.
 *
 * <p>For quantized tensors {@code real = (q - zeroPoint) * scale}. Float tensors carry scale 0 and
 * zero point 0, as TFLite reports them; an integer tensor with scale 0 is not quantized (its values
 * are used as they are), as in {@code edgetl.runtime.backends.TensorInfo.quantized}.
 */
public final class TensorSpec {
    /** The element types an edgetl classifier uses for its input and output. */
    public enum DataType {
        FLOAT32(4, "float32"), UINT8(1, "uint8"), INT8(1, "int8");

        public final int bytes;
        public final String numpyName;

        DataType(int bytes, String numpyName) {
            this.bytes = bytes;
            this.numpyName = numpyName;
        }

        /** Parses a NumPy dtype name ({@code "float32"}, {@code "uint8"}, {@code "int8"}). */
        public static DataType fromNumpyName(String name) {
            for (DataType t : values()) {
                if (t.numpyName.equals(name.toLowerCase(Locale.ROOT))) {
                    return t;
                }
            }
            throw new MetadataException("Unsupported tensor dtype. Received: dtype=" + name
                    + ". Supported: float32, uint8, int8");
        }

        boolean isInteger() {
            return this != FLOAT32;
        }

        int min() {
            return this == UINT8 ? 0 : -128;
        }

        int max() {
            return this == UINT8 ? 255 : 127;
        }
    }

    private final DataType dataType;
    private final double scale;
    private final int zeroPoint;
    private final int[] shape;

    /**
     * @throws MetadataException if the scale is negative or not finite
     */
    public TensorSpec(DataType dataType, double scale, int zeroPoint, int[] shape) {
        if (!(scale >= 0.0 && Double.isFinite(scale))) {
            throw new MetadataException("A tensor's quantization scale must be finite and >= 0. Received: scale=" + scale);
        }
        this.dataType = dataType;
        this.scale = scale;
        this.zeroPoint = zeroPoint;
        this.shape = shape == null ? new int[0] : shape.clone();
    }

    /** True for an integer tensor with a positive scale: its values are {@code (q - zeroPoint) * scale}. */
    public boolean isQuantized() {
        return dataType.isInteger() && scale > 0.0;
    }

    public DataType dataType() { return dataType; }
    public double scale() { return scale; }
    public int zeroPoint() { return zeroPoint; }
    public int[] shape() { return shape.clone(); }

    @Override
    public String toString() {
        return "TensorSpec(" + dataType.numpyName + ", scale=" + scale + ", zero_point=" + zeroPoint
                + ", shape=" + Arrays.toString(shape) + ")";
    }
}
