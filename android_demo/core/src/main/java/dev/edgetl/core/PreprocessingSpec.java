package dev.edgetl.core;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * How a photo becomes the model input: the JVM mirror of Python's {@code edgetl.spec.PreprocessingSpec}.
 *
 * <p>Read from the {@code "preprocessing"} member of {@code edgetl.json}. Validation follows the
 * Python class so that a spec the Python side refuses is refused here too.
 */
public final class PreprocessingSpec {
    /** Channel order of the input tensor. */
    public enum ColorOrder { RGB, BGR }

    /** Memory layout of the input tensor. */
    public enum Layout { NHWC, NCHW }

    public static final String RESIZE_BILINEAR = "bilinear";

    private final int height;
    private final int width;
    private final ColorOrder colorOrder;
    private final double[] mean;
    private final double[] std;
    private final String resizeMethod;
    private final Layout layout;
    private final String normalization;

    /**
     * @param height model input height in pixels (at least 8)
     * @param width model input width in pixels (at least 8)
     * @param colorOrder channel order of the input tensor
     * @param mean per-channel value subtracted from the [0, 255] pixel, in tensor channel order
     * @param std per-channel divisor applied after subtracting {@code mean}; no zeros
     * @param resizeMethod only {@code "bilinear"} (Pillow's filter) exists
     * @param layout NHWC or NCHW
     * @param normalization human-readable note of what the network does inside
     * @throws MetadataException if a value is out of range
     */
    public PreprocessingSpec(int height, int width, ColorOrder colorOrder, double[] mean, double[] std,
                             String resizeMethod, Layout layout, String normalization) {
        if (height < 8 || width < 8) {
            throw new MetadataException("image_size must be at least 8x8. Received: image_size=[" + height + ", " + width + "]");
        }
        if (mean.length != 3 || std.length != 3) {
            throw new MetadataException("mean and std must have 3 values. Received: mean=" + Arrays.toString(mean)
                    + ", std=" + Arrays.toString(std));
        }
        for (double s : std) {
            if (s == 0.0) {
                throw new MetadataException("std must not contain 0. Received: std=" + Arrays.toString(std));
            }
        }
        if (!RESIZE_BILINEAR.equals(resizeMethod)) {
            throw new MetadataException("resize_method must be one of (bilinear). Received: resize_method=" + resizeMethod);
        }
        this.height = height;
        this.width = width;
        this.colorOrder = colorOrder;
        this.mean = mean.clone();
        this.std = std.clone();
        this.resizeMethod = resizeMethod;
        this.layout = layout;
        this.normalization = normalization;
    }

    /** The spec of a standard edgetl model: RGB [0, 255], mean 0, std 1, NHWC. */
    public static PreprocessingSpec ofSize(int height, int width) {
        return new PreprocessingSpec(height, width, ColorOrder.RGB, new double[] {0, 0, 0}, new double[] {1, 1, 1},
                RESIZE_BILINEAR, Layout.NHWC, "");
    }

    /**
     * Reads {@code PreprocessingSpec.to_dict()} output; unknown keys are ignored, as in Python.
     *
     * @throws MetadataException if {@code image_size} is missing or a value is invalid
     */
    public static PreprocessingSpec fromMap(Map<String, Object> data) {
        List<Object> size = Json.asList(Json.require(data, "image_size"), "image_size");
        if (size.size() != 2) {
            throw new MetadataException("image_size must be [height, width]. Received: image_size=" + size);
        }
        int h = (int) Json.asLong(size.get(0), "image_size[0]");
        int w = (int) Json.asLong(size.get(1), "image_size[1]");
        String order = Json.optString(data, "color_order", "RGB");
        String layout = Json.optString(data, "layout", "NHWC");
        return new PreprocessingSpec(
                h, w,
                parseEnum(ColorOrder.class, order, "color_order"),
                triple(data, "mean", 0.0),
                triple(data, "std", 1.0),
                Json.optString(data, "resize_method", RESIZE_BILINEAR),
                parseEnum(Layout.class, layout, "layout"),
                Json.optString(data, "normalization", ""));
    }

    /** Parses the JSON text of a preprocessing spec ({@code preprocessing.json}). */
    public static PreprocessingSpec fromJson(String json) {
        return fromMap(Json.parseObject(json));
    }

    private static double[] triple(Map<String, Object> data, String key, double fallback) {
        if (!data.containsKey(key) || data.get(key) == null) {
            return new double[] {fallback, fallback, fallback};
        }
        List<Object> values = Json.asList(data.get(key), key);
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = Json.asDouble(values.get(i), key + "[" + i + "]");
        }
        return out;
    }

    private static <E extends Enum<E>> E parseEnum(Class<E> type, String value, String key) {
        for (E e : type.getEnumConstants()) {
            if (e.name().equals(value)) {
                return e;
            }
        }
        throw new MetadataException(key + " must be one of " + Arrays.toString(type.getEnumConstants())
                + ". Received: " + key + "=" + value);
    }

    public int height() { return height; }
    public int width() { return width; }
    public ColorOrder colorOrder() { return colorOrder; }
    public double[] mean() { return mean.clone(); }
    public double[] std() { return std.clone(); }
    public String resizeMethod() { return resizeMethod; }
    public Layout layout() { return layout; }
    public String normalization() { return normalization; }


    @Override
    public String toString() {
        return "PreprocessingSpec(image_size=[" + height + ", " + width + "], color_order=" + colorOrder
                + ", mean=" + Arrays.toString(mean) + ", std=" + Arrays.toString(std) + ", resize_method="
                + resizeMethod + ", layout=" + layout + ")";
    }
}
