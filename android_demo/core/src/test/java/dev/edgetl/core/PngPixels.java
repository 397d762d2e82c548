package dev.edgetl.core;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.File;
import java.io.IOException;
import javax.imageio.ImageIO;

/**
 * Decodes a PNG to interleaved 8-bit RGB as Pillow's {@code Image.open(p).convert("RGB")} does.
 *
 * <p>PNG is lossless, so both decoders yield the same samples. The raster is read directly
 * (not through {@code getRGB}) so that no colour-space conversion can touch the values; palette
 * images go through their palette, grey images are replicated to three channels, alpha is dropped.
 */
final class PngPixels {
    final int width;
    final int height;
    final byte[] rgb;

    private PngPixels(int width, int height, byte[] rgb) {
        this.width = width;
        this.height = height;
        this.rgb = rgb;
    }

    static PngPixels read(File file) throws IOException {
        BufferedImage img = ImageIO.read(file);
        if (img == null) {
            throw new IOException("Not a decodable image: " + file);
        }
        int w = img.getWidth();
        int h = img.getHeight();
        byte[] rgb = new byte[w * h * 3];
        Raster raster = img.getRaster();
        int bands = raster.getNumBands();
        boolean eightBit = raster.getSampleModel().getSampleSize(0) == 8;
        if (img.getColorModel() instanceof IndexColorModel || !eightBit) {
            if (!(img.getColorModel() instanceof IndexColorModel)) {
                throw new IOException("Only 8-bit PNGs are supported by this test helper: " + file);
            }
            int[] argb = img.getRGB(0, 0, w, h, null, 0, w);
            return new PngPixels(w, h, PillowResize.argbToRgb(argb, w, h));
        }
        int[] row = new int[w * bands];
        for (int y = 0; y < h; y++) {
            raster.getPixels(0, y, w, 1, row);
            for (int x = 0; x < w; x++) {
                int o = (y * w + x) * 3;
                if (bands >= 3) {
                    rgb[o] = (byte) row[x * bands];
                    rgb[o + 1] = (byte) row[x * bands + 1];
                    rgb[o + 2] = (byte) row[x * bands + 2];
                } else {
                    byte v = (byte) row[x * bands];
                    rgb[o] = v;
                    rgb[o + 1] = v;
                    rgb[o + 2] = v;
                }
            }
        }
        return new PngPixels(w, h, rgb);
    }
}
