package dev.edgetl.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;

import java.nio.ByteBuffer;
import org.junit.Test;

public class ImageOpsTest {
    /** 3x2 image whose third channel is 10 * y + x, as in the Pillow run that gave the expectations. */
    private static ImageOps.Rgb sample() {
        byte[] px = new byte[3 * 2 * 3];
        for (int y = 0; y < 2; y++) {
            for (int x = 0; x < 3; x++) {
                int o = (y * 3 + x) * 3;
                px[o] = (byte) x;
                px[o + 1] = (byte) y;
                px[o + 2] = (byte) (10 * y + x);
            }
        }
        return new ImageOps.Rgb(px, 3, 2);
    }

    private static int[] thirdChannel(ImageOps.Rgb img) {
        int[] out = new int[img.width * img.height];
        for (int i = 0; i < out.length; i++) {
            out[i] = img.pixels[i * 3 + 2];
        }
        return out;
    }

    @Test
    public void exifOrientationsMatchPillowExifTranspose() {
        // ImageOps.exif_transpose on the same image, Pillow 13.0.0, row-major.
        int[][] expected = {
            null,
            {0, 1, 2, 10, 11, 12},
            {2, 1, 0, 12, 11, 10},
            {12, 11, 10, 2, 1, 0},
            {10, 11, 12, 0, 1, 2},
            {0, 10, 1, 11, 2, 12},
            {10, 0, 11, 1, 12, 2},
            {12, 2, 11, 1, 10, 0},
            {2, 12, 1, 11, 0, 10},
        };
        for (int o = 1; o <= 8; o++) {
            ImageOps.Rgb out = ImageOps.applyExifOrientation(sample(), o);
            assertEquals("orientation " + o, o >= 5 ? 2 : 3, out.width);
            assertArrayEquals("orientation " + o, expected[o], thirdChannel(out));
        }
        ImageOps.Rgb in = sample();
        assertSame(in, ImageOps.applyExifOrientation(in, 0));
    }

    @Test
    public void cameraRotationIsClockwise() {
        assertArrayEquals(new int[] {10, 0, 11, 1, 12, 2}, thirdChannel(ImageOps.rotateClockwise(sample(), 90)));
        assertArrayEquals(new int[] {12, 11, 10, 2, 1, 0}, thirdChannel(ImageOps.rotateClockwise(sample(), 180)));
        assertArrayEquals(new int[] {2, 12, 1, 11, 0, 10}, thirdChannel(ImageOps.rotateClockwise(sample(), 270)));
        assertArrayEquals(thirdChannel(sample()), thirdChannel(ImageOps.rotateClockwise(sample(), 360)));
    }

    @Test
    public void rgbaPlaneWithRowPaddingBecomesRgb() {
        // 2x2 RGBA with 3 bytes of padding per row, starting 1 byte into the buffer.
        byte[] bytes = {99, 1, 2, 3, 0, 4, 5, 6, 0, 7, 7, 7, 8, 9, 10, 0, 11, 12, 13, 0, 7, 7, 7};
        ByteBuffer plane = ByteBuffer.wrap(bytes);
        plane.position(1);
        assertArrayEquals(new byte[] {1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13}, ImageOps.rgbaToRgb(plane, 2, 2, 11, 4));
        assertEquals(1, plane.position());
    }

    @Test
    public void labelsStripLikePython() {
        assertEquals("a b", Labels.strip("\u00a0\t a b\u3000\u0085\n"));
        assertEquals("\u200bx", Labels.strip("\u200bx ")); // zero-width space is not whitespace in Python
    }
}
