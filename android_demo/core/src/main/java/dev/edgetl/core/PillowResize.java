package dev.edgetl.core;

/**
 * Pillow's {@code Image.resize(size, Image.Resampling.BILINEAR)} for 8-bit RGB, bit for bit.
 *
 * <p>A port of the algorithm in Pillow's {@code src/libImaging/Resample.c} (convolution resampling,
 * {@code ImagingResampleInner} with the bilinear "triangle" filter), which is what
 * {@code edgetl.runtime.image.load_pixels} runs in training, verification and the golden vectors:
 * <ol>
 *   <li>For each axis, per output pixel: the source centre {@code in0 + (i + 0.5) * scale}, a support
 *       of {@code 1.0 * max(scale, 1)} (the filter widens when shrinking, which antialiases), the
 *       first and last source pixels rounded as {@code (int)(x + 0.5)} and clipped to the image,
 *       triangle weights evaluated at {@code (j + xmin - centre + 0.5) / max(scale, 1)} and divided by
 *       their sum, all in double precision exactly as Pillow computes them;</li>
 *   <li>weights converted to fixed point with {@code PRECISION_BITS = 32 - 8 - 2} bits, rounding
 *       half away from zero with a truncating cast;</li>
 *   <li>two passes, horizontal then vertical, or vertical then horizontal when Pillow 13 picks
 *       that order (see {@link #verticalFirst}); the first pass covers only the source rows (or
 *       columns) the second reads. Each pass starts its 32-bit accumulator at
 *       {@code 1 << (PRECISION_BITS - 1)} (so the shift rounds), shifts right by
 *       {@code PRECISION_BITS} and clips to [0, 255]. A pass is skipped when its axis keeps its
 *       size, exactly when Pillow skips it: an identity pass would still round.</li>
 * </ol>
 * Java's {@code double} arithmetic is IEEE 754 binary64 with round-to-nearest and no fused
 * multiply-add, the same as Pillow's C code compiled for x86-64 with SSE2, so the coefficients and
 * therefore the bytes are identical.
 */
public final class PillowResize {
    /** 8 bits for the result, 2 for overflow and sign: Pillow's {@code PRECISION_BITS}. */
    static final int PRECISION_BITS = 32 - 8 - 2;
    private static final double BILINEAR_SUPPORT = 1.0;

    private PillowResize() {}

    /** Per output pixel along one axis: first source index, source count and fixed-point weights. */
    static final class Coefficients {
        final int ksize;
        final int[] bounds; // [2 * i] = first source index, [2 * i + 1] = number of source pixels
        final int[] weights; // ksize per output pixel, PRECISION_BITS fixed point

        Coefficients(int ksize, int[] bounds, int[] weights) {
            this.ksize = ksize;
            this.bounds = bounds;
            this.weights = weights;
        }
    }

    private static double bilinearFilter(double x) {
        if (x < 0.0) {
            x = -x;
        }
        if (x < 1.0) {
            return 1.0 - x;
        }
        return 0.0;
    }

    /** Pillow's {@code precompute_coeffs} followed by {@code normalize_coeffs_8bpc}. */
    static Coefficients precompute(int inSize, float in0, float in1, int outSize) {
        double scale = (double) (in1 - in0) / outSize; // the float difference, as Pillow's box is float[4]
        double filterscale = scale < 1.0 ? 1.0 : scale;
        double support = BILINEAR_SUPPORT * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        double[] kk = new double[outSize * ksize];
        int[] bounds = new int[outSize * 2];
        for (int xx = 0; xx < outSize; xx++) {
            double center = in0 + (xx + 0.5) * scale;
            double ww = 0.0;
            double ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            int k = xx * ksize;
            for (int x = 0; x < xmax; x++) {
                double w = bilinearFilter((x + xmin - center + 0.5) * ss);
                kk[k + x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) {
                if (ww != 0.0) {
                    kk[k + x] /= ww;
                }
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        int[] fixed = new int[kk.length];
        double one = 1 << PRECISION_BITS;
        for (int i = 0; i < kk.length; i++) {
            fixed[i] = kk[i] < 0 ? (int) (-0.5 + kk[i] * one) : (int) (0.5 + kk[i] * one);
        }
        return new Coefficients(ksize, bounds, fixed);
    }

    /** Pillow's {@code clip8}: drop the fraction bits, then clamp to a byte. */
    private static byte clip8(int acc) {
        int v = acc >> PRECISION_BITS;
        return (byte) (v < 0 ? 0 : (v > 255 ? 255 : v));
    }

    /**
     * Resizes interleaved 8-bit RGB pixels.
     *
     * @param rgb {@code width * height * 3} bytes, row-major, R G B per pixel
     * @return {@code outWidth * outHeight * 3} bytes in the same layout (a copy when sizes are equal)
     */
    public static byte[] resizeRgb(byte[] rgb, int width, int height, int outWidth, int outHeight) {
        if (width <= 0 || height <= 0 || outWidth <= 0 || outHeight <= 0) {
            throw new IllegalArgumentException("sizes must be positive. Received: " + width + "x" + height
                    + " -> " + outWidth + "x" + outHeight);
        }
        if (rgb.length != width * height * 3) {
            throw new IllegalArgumentException("rgb must hold width * height * 3 bytes. Received: "
                    + rgb.length + " bytes for " + width + "x" + height);
        }
        // Pillow's box defaults to the whole image, (0, 0, width, height), so a pass is needed
        // exactly when its axis changes size.
        boolean needHorizontal = outWidth != width;
        boolean needVertical = outHeight != height;
        if (!needHorizontal && !needVertical) {
            return rgb.clone();
        }
        Coefficients horizontal = needHorizontal ? precompute(width, 0f, (float) width, outWidth) : null;
        Coefficients vertical = needVertical ? precompute(height, 0f, (float) height, outHeight) : null;
        if (!needHorizontal) {
            return verticalPass(rgb, width, 0, width, outHeight, vertical);
        }
        if (!needVertical) {
            return horizontalPass(rgb, width, 0, height, outWidth, horizontal);
        }
        if (verticalFirst(width, height, outWidth, outHeight)) {
            // Only the source columns the horizontal pass reads go through the vertical pass.
            int xFirst = horizontal.bounds[0];
            int xLast = horizontal.bounds[outWidth * 2 - 2] + horizontal.bounds[outWidth * 2 - 1];
            byte[] temp = verticalPass(rgb, width, xFirst, xLast - xFirst, outHeight, vertical);
            return horizontalPass(temp, xLast - xFirst, 0, outHeight, outWidth, shiftBounds(horizontal, xFirst));
        }
        // Only the source rows the vertical pass reads go through the horizontal pass.
        int yFirst = vertical.bounds[0];
        int yLast = vertical.bounds[outHeight * 2 - 2] + vertical.bounds[outHeight * 2 - 1];
        byte[] temp = horizontalPass(rgb, width, yFirst, yLast - yFirst, outWidth, horizontal);
        return verticalPass(temp, outWidth, 0, outWidth, outHeight, shiftBounds(vertical, yFirst));
    }

    /**
     * Which pass Pillow runs first when both axes change size.
     *
     * <p>Pillow up to 12 always ran the horizontal pass first. Pillow 13 (python-pillow/Pillow#9549,
     * "If height is scaled down significantly more than width, resize vertically first") runs the
     * vertical pass first when the height shrinks by more than twice as many pixels as the width
     * does. Each pass rounds to 8 bits, so the order moves many output bytes by one level. This
     * condition was established against Pillow 13.0.0 on every size pair of small grids and on
     * random and boundary sizes of large, tall and wide images, without exception; the resize
     * parity cases of {@code tests/test_android_core.py} check it on every run.
     */
    static boolean verticalFirst(int width, int height, int outWidth, int outHeight) {
        return outHeight < height && (long) height - outHeight > 2L * ((long) width - outWidth);
    }

    private static Coefficients shiftBounds(Coefficients c, int first) {
        int[] shifted = c.bounds.clone();
        for (int i = 0; i < shifted.length; i += 2) {
            shifted[i] -= first;
        }
        return new Coefficients(c.ksize, shifted, c.weights);
    }

    /**
     * Resizes packed ARGB pixels (what {@code android.graphics.Bitmap.getPixels} returns); alpha is
     * dropped, as {@code Image.convert("RGB")} does.
     *
     * @return {@code outWidth * outHeight * 3} bytes, R G B per pixel, row-major
     */
    public static byte[] resizeArgb(int[] argb, int width, int height, int outWidth, int outHeight) {
        return resizeRgb(argbToRgb(argb, width, height), width, height, outWidth, outHeight);
    }

    /** Unpacks ARGB ints to interleaved RGB bytes. */
    public static byte[] argbToRgb(int[] argb, int width, int height) {
        if (argb.length < width * height) {
            throw new IllegalArgumentException("argb must hold width * height pixels. Received: " + argb.length);
        }
        byte[] rgb = new byte[width * height * 3];
        for (int i = 0, o = 0; i < width * height; i++, o += 3) {
            int p = argb[i];
            rgb[o] = (byte) (p >> 16);
            rgb[o + 1] = (byte) (p >> 8);
            rgb[o + 2] = (byte) p;
        }
        return rgb;
    }

    /** Horizontal pass over source rows [rowOffset, rowOffset + rows) of an image {@code inWidth} wide. */
    private static byte[] horizontalPass(byte[] in, int inWidth, int rowOffset, int rows, int outWidth, Coefficients c) {
        byte[] out = new byte[outWidth * rows * 3];
        for (int yy = 0; yy < rows; yy++) {
            int rowStart = (yy + rowOffset) * inWidth * 3;
            int o = yy * outWidth * 3;
            for (int xx = 0; xx < outWidth; xx++, o += 3) {
                int start = rowStart + c.bounds[xx * 2] * 3;
                convolve(in, start, 3, c.bounds[xx * 2 + 1], c.weights, xx * c.ksize, out, o);
            }
        }
        return out;
    }

    /** Vertical pass over source columns [colOffset, colOffset + cols) of an image {@code inWidth} wide. */
    private static byte[] verticalPass(byte[] in, int inWidth, int colOffset, int cols, int outHeight, Coefficients c) {
        byte[] out = new byte[cols * outHeight * 3];
        int stride = inWidth * 3;
        for (int yy = 0; yy < outHeight; yy++) {
            int o = yy * cols * 3;
            for (int xx = 0; xx < cols; xx++, o += 3) {
                int start = c.bounds[yy * 2] * stride + (xx + colOffset) * 3;
                convolve(in, start, stride, c.bounds[yy * 2 + 1], c.weights, yy * c.ksize, out, o);
            }
        }
        return out;
    }

    /**
     * One output RGB pixel: the fixed-point weighted sum of {@code count} source pixels that lie
     * {@code step} bytes apart (3 along a row, a row's stride down a column), rounded as Pillow does.
     */
    private static void convolve(byte[] in, int start, int step, int count, int[] weights, int k, byte[] out, int o) {
        int half = 1 << (PRECISION_BITS - 1);
        int ss0 = half;
        int ss1 = half;
        int ss2 = half;
        for (int n = 0, i = start; n < count; n++, i += step) {
            int w = weights[k + n];
            ss0 += (in[i] & 0xFF) * w;
            ss1 += (in[i + 1] & 0xFF) * w;
            ss2 += (in[i + 2] & 0xFF) * w;
        }
        out[o] = clip8(ss0);
        out[o + 1] = clip8(ss1);
        out[o + 2] = clip8(ss2);
    }
}
