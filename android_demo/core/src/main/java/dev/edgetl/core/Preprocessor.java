package dev.edgetl.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Photo pixels to the exact bytes of the model's input tensor, as {@code edgetl.runtime} makes them.
 *
 * <p>Two steps, each checked against the golden vectors:
 * <ol>
 *   <li>{@link #pixels}: Pillow-bilinear resize to the spec's size (stretch, no crop), then the
 *       spec's colour order: the uint8 HWC array of {@code edgetl.runtime.image.load_pixels}, whose
 *       SHA-256 is {@code pixels_sha256};</li>
 *   <li>{@link #inputTensor}: per channel {@code (pixel - mean) / std}, quantized with the input
 *       tensor's scale and zero point for uint8/int8 models, laid out NHWC or NCHW; its SHA-256 is
 *       {@code input_sha256}.</li>
 * </ol>
 */
public final class Preprocessor {
    private Preprocessor() {}

    /**
     * Resizes decoded RGB pixels to the model size and applies the colour order.
     *
     * @param rgb upright (EXIF-rotated) interleaved RGB, {@code width * height * 3} bytes
     * @return {@code spec.height() * spec.width() * 3} bytes, HWC, channels in {@code spec.colorOrder()}
     */
    public static byte[] pixels(byte[] rgb, int width, int height, PreprocessingSpec spec) {
        byte[] out = (width == spec.width() && height == spec.height())
                ? rgb.clone()
                : PillowResize.resizeRgb(rgb, width, height, spec.width(), spec.height());
        if (spec.colorOrder() == PreprocessingSpec.ColorOrder.BGR) {
            for (int i = 0; i < out.length; i += 3) {
                byte r = out[i];
                out[i] = out[i + 2];
                out[i + 2] = r;
            }
        }
        return out;
    }

    /** {@link #pixels} for packed ARGB ints ({@code Bitmap.getPixels}); alpha is dropped. */
    public static byte[] pixelsFromArgb(int[] argb, int width, int height, PreprocessingSpec spec) {
        return pixels(PillowResize.argbToRgb(argb, width, height), width, height, spec);
    }

    /**
     * Turns model-sized pixels into the input tensor's bytes, exactly as
     * {@code edgetl.runtime.Classifier.quantize_input} does (little-endian for float32, the byte
     * order of every Android ABI and of NumPy on x86-64 and arm64).
     *
     * <ul>
     *   <li>float32 input: {@code (pixel - mean[c]) / std[c]} in float32;</li>
     *   <li>uint8/int8 input whose affine map {@code pixel -> (pixel - mean) / std / scale + zero_point}
     *       is an integer shift {@code pixel + k} within one quantization step over [0, 255] (the
     *       edgetl case: mean 0, std 1, scale ~1, and Coral-style raw-pixel models): exactly
     *       {@code clamp(pixel + k)}, see {@link #identityShift};</li>
     *   <li>other uint8/int8 input: {@code clamp(rint((pixel - mean[c]) / std[c] / scale + zero_point))}
     *       in float64, rounding half to even like {@code np.rint}.</li>
     * </ul>
     * {@code mean[c]}/{@code std[c]} apply to channel c of the tensor, i.e. after the colour order.
     *
     * @param pixels output of {@link #pixels}: HWC bytes in the spec's colour order
     * @param input the model's input tensor type and quantization
     */
    public static byte[] inputTensor(byte[] pixels, PreprocessingSpec spec, TensorSpec input) {
        int h = spec.height();
        int w = spec.width();
        if (pixels.length != h * w * 3) {
            throw new IllegalArgumentException("pixels must hold height * width * 3 bytes. Received: " + pixels.length);
        }
        int n = h * w * 3;
        TensorSpec.DataType type = input.dataType();
        ByteBuffer out = ByteBuffer.allocate(n * type.bytes).order(ByteOrder.LITTLE_ENDIAN);
        double[] mean = spec.mean();
        double[] std = spec.std();
        float[] mean32 = new float[3];
        float[] std32 = new float[3];
        for (int c = 0; c < 3; c++) {
            mean32[c] = (float) mean[c];
            std32[c] = (float) std[c];
        }
        // An integer tensor without quantization (scale 0) takes the values as they are.
        double scale = input.scale() > 0.0 ? input.scale() : 1.0;
        int zeroPoint = input.scale() > 0.0 ? input.zeroPoint() : 0;
        Integer shift = type.isInteger() ? identityShift(mean, std, scale, zeroPoint) : null;
        boolean nchw = spec.layout() == PreprocessingSpec.Layout.NCHW;
        for (int i = 0; i < n; i++) {
            // i walks the tensor in its own layout; src is the matching HWC pixel byte.
            int src = i;
            int c = i % 3;
            if (nchw) {
                c = i / (h * w);
                src = (i % (h * w)) * 3 + c;
            }
            int pixel = pixels[src] & 0xFF;
            if (type == TensorSpec.DataType.FLOAT32) {
                out.putFloat(((float) pixel - mean32[c]) / std32[c]);
                continue;
            }
            double q = shift != null
                    ? pixel + shift
                    : Math.rint(((double) pixel - mean[c]) / std[c] / scale + zeroPoint);
            out.put((byte) (int) Math.max(type.min(), Math.min(type.max(), q)));
        }
        return out.array();
    }

    /**
     * The integer k with {@code q(p) = p + k} within one quantization step for every p in [0, 255],
     * or {@code null}: {@code edgetl.runtime.classifier._identity_shift}, in float64 like it.
     *
     * <p>Per channel, slope {@code 1 / (std * scale)} and offset {@code zero_point - mean * slope};
     * the shift is {@code rint(offset)}, the same for all channels, and the map may stray from it
     * by at most one step (plus 1e-9) at p = 0 and p = 255.
     */
    static Integer identityShift(double[] mean, double[] std, double scale, int zeroPoint) {
        double shift = Double.NaN;
        double worst = 0.0;
        for (int c = 0; c < 3; c++) {
            double slope = 1.0 / (std[c] * scale);
            double offset = zeroPoint - mean[c] * slope;
            double rounded = Math.rint(offset);
            if (c > 0 && rounded != shift) {
                return null;
            }
            shift = rounded;
            worst = Math.max(worst, Math.max(Math.abs(offset - rounded), Math.abs((slope - 1.0) * 255.0 + offset - rounded)));
        }
        return worst <= 1.0 + 1e-9 ? (int) shift : null;
    }

    /**
     * Real-valued scores from an output tensor's raw values, as
     * {@code Classifier.dequantize_output}: {@code (q - zero_point) * scale} in float32 for quantized
     * outputs, the values themselves (as float32) otherwise.
     *
     * @param raw the output's elements; for uint8 pass 0..255 (not Java's signed bytes)
     */
    public static float[] dequantize(double[] raw, TensorSpec output) {
        float[] out = new float[raw.length];
        float scale = (float) output.scale();
        float zeroPoint = (float) output.zeroPoint();
        for (int i = 0; i < raw.length; i++) {
            out[i] = output.isQuantized() ? ((float) raw[i] - zeroPoint) * scale : (float) raw[i];
        }
        return out;
    }

    /** {@link #dequantize(double[], TensorSpec)} for the output buffer's bytes (little-endian floats). */
    public static float[] dequantize(byte[] rawBytes, TensorSpec output) {
        ByteBuffer buf = ByteBuffer.wrap(rawBytes).order(ByteOrder.LITTLE_ENDIAN);
        int count = rawBytes.length / output.dataType().bytes;
        double[] raw = new double[count];
        for (int i = 0; i < count; i++) {
            switch (output.dataType()) {
                case FLOAT32: raw[i] = buf.getFloat(); break;
                case UINT8: raw[i] = buf.get() & 0xFF; break;
                default: raw[i] = buf.get(); break;
            }
        }
        return dequantize(raw, output);
    }
}
