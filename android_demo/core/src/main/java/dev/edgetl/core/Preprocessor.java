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
     * Turns model-sized pixels into the input tensor's bytes (little-endian for float32, the byte
     * order of every Android ABI and of NumPy on x86-64 and arm64).
     *
     * <p>Float: {@code x = (pixel - mean[c]) / std[c]} in float32. Quantized:
     * {@code q = clamp(round_half_even(x / scale + zero_point))}, computed in float32 like NumPy does
     * on float32 arrays; when mean is 0, std is 1 and the scale is exactly 1 (the edgetl case) that
     * is the integer shift {@code q = clamp(pixel + zero_point)}, with no rounding at all.
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
        float[] mean = new float[3];
        float[] std = new float[3];
        for (int c = 0; c < 3; c++) {
            mean[c] = (float) spec.mean()[c];
            std[c] = (float) spec.std()[c];
        }
        boolean identity = spec.isIdentityNormalization();
        boolean shiftOnly = identity && input.scale() == 1.0;
        float scale = (float) input.scale();
        float zeroPoint = input.zeroPoint();
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
                out.putFloat(identity ? (float) pixel : ((float) pixel - mean[c]) / std[c]);
                continue;
            }
            long q;
            if (shiftOnly) {
                q = (long) pixel + input.zeroPoint();
            } else {
                float x = identity ? (float) pixel : ((float) pixel - mean[c]) / std[c];
                float v = x / scale + zeroPoint;
                q = (long) Math.rint(v);
            }
            q = Math.max(type.min(), Math.min(type.max(), q));
            out.put((byte) q);
        }
        return out.array();
    }

    /**
     * Real-valued scores from an output tensor's raw values: {@code (q - zero_point) * scale} in
     * float32 for uint8/int8, the values themselves for float32.
     *
     * @param raw the output's elements; for uint8 pass 0..255 (not Java's signed bytes)
     */
    public static float[] dequantize(double[] raw, TensorSpec output) {
        float[] out = new float[raw.length];
        float scale = (float) output.scale();
        for (int i = 0; i < raw.length; i++) {
            out[i] = output.dataType().isQuantized()
                    ? (float) (raw[i] - output.zeroPoint()) * scale
                    : (float) raw[i];
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
