package dev.edgetl.core;

import java.nio.ByteBuffer;

/**
 * Getting upright RGB out of what Android hands over: camera planes, rotations, EXIF orientation.
 *
 * <p>Plain Java so it is tested here; the app calls it with the bytes of an {@code ImageProxy}
 * plane or of a decoded {@code Bitmap}.
 */
public final class ImageOps {
    private ImageOps() {}

    /**
     * Copies RGB out of an RGBA_8888 plane (CameraX {@code OUTPUT_IMAGE_FORMAT_RGBA_8888}, or
     * {@code Bitmap.copyPixelsToBuffer} of an ARGB_8888 bitmap, which stores R, G, B, A bytes).
     *
     * @param plane the pixel bytes from its current position; its position is not changed
     * @param rowStride bytes from one row to the next (may exceed {@code width * pixelStride})
     * @param pixelStride bytes from one pixel to the next (4 for RGBA_8888)
     */
    public static byte[] rgbaToRgb(ByteBuffer plane, int width, int height, int rowStride, int pixelStride) {
        if (pixelStride < 3 || rowStride < width * pixelStride) {
            throw new IllegalArgumentException("Bad strides for " + width + "x" + height + ". Received: rowStride="
                    + rowStride + ", pixelStride=" + pixelStride);
        }
        int base = plane.position();
        byte[] rgb = new byte[width * height * 3];
        for (int y = 0, o = 0; y < height; y++) {
            int row = base + y * rowStride;
            for (int x = 0; x < width; x++, o += 3) {
                int i = row + x * pixelStride;
                rgb[o] = plane.get(i);
                rgb[o + 1] = plane.get(i + 1);
                rgb[o + 2] = plane.get(i + 2);
            }
        }
        return rgb;
    }

    /** An RGB image and its size, for operations that change the size. */
    public static final class Rgb {
        public final byte[] pixels;
        public final int width;
        public final int height;

        public Rgb(byte[] pixels, int width, int height) {
            if (pixels.length != width * height * 3) {
                throw new IllegalArgumentException("pixels must hold width * height * 3 bytes. Received: " + pixels.length);
            }
            this.pixels = pixels;
            this.width = width;
            this.height = height;
        }
    }

    /**
     * Rotates clockwise by 0, 90, 180 or 270 degrees: CameraX's {@code ImageInfo.getRotationDegrees()}
     * is the clockwise rotation that makes the frame upright.
     */
    public static Rgb rotateClockwise(Rgb in, int degrees) {
        switch (((degrees % 360) + 360) % 360) {
            case 0: return in;
            case 90: return transform(in, 6);
            case 180: return transform(in, 3);
            case 270: return transform(in, 8);
            default: throw new IllegalArgumentException("degrees must be a multiple of 90. Received: " + degrees);
        }
    }

    /**
     * Makes a photo upright from its EXIF orientation tag (1..8) the way Pillow's
     * {@code ImageOps.exif_transpose} does: 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom,
     * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise. Other values
     * (0, 1, unknown) leave the image as it is.
     */
    public static Rgb applyExifOrientation(Rgb in, int orientation) {
        return orientation >= 2 && orientation <= 8 ? transform(in, orientation) : in;
    }

    private static Rgb transform(Rgb in, int orientation) {
        int w = in.width;
        int h = in.height;
        boolean swap = orientation >= 5;
        int ow = swap ? h : w;
        int oh = swap ? w : h;
        byte[] out = new byte[in.pixels.length];
        for (int y = 0; y < oh; y++) {
            for (int x = 0; x < ow; x++) {
                int sx;
                int sy;
                switch (orientation) {
                    case 2: sx = w - 1 - x; sy = y; break;
                    case 3: sx = w - 1 - x; sy = h - 1 - y; break;
                    case 4: sx = x; sy = h - 1 - y; break;
                    case 5: sx = y; sy = x; break;
                    case 6: sx = y; sy = h - 1 - x; break;
                    case 7: sx = w - 1 - y; sy = h - 1 - x; break;
                    default: sx = w - 1 - y; sy = x; break; // 8
                }
                int s = (sy * w + sx) * 3;
                int o = (y * ow + x) * 3;
                out[o] = in.pixels[s];
                out[o + 1] = in.pixels[s + 1];
                out[o + 2] = in.pixels[s + 2];
            }
        }
        return new Rgb(out, ow, oh);
    }
}
