package dev.edgetl.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotSame;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

/**
 * Hand-made resize cases whose expected bytes come from Pillow 13.0.0
 * ({@code Image.fromarray(a).resize((ow, oh), Image.Resampling.BILINEAR)}); real photos at many
 * sizes are checked by {@link ResizeParityTest} with fixtures written by the pytest.
 */
public class PillowResizeTest {
    /** The synthetic image the expectations were computed on: {@code (x*37 + y*91 + c*53 + (x*y % 17)*11) & 255}. */
    static byte[] pattern(int w, int h) {
        byte[] out = new byte[w * h * 3];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int c = 0; c < 3; c++) {
                    out[(y * w + x) * 3 + c] = (byte) ((x * 37 + y * 91 + c * 53 + (x * y) % 17 * 11) & 255);
                }
            }
        }
        return out;
    }

    private static final Object[][] CASES = {
        {new int[] {7, 5, 3, 2}, "70271425c32d9c483a99eb9d71e9ed4e8ea2572e327531525e8641216bd4a047"}, // shrink both, H first
        {new int[] {5, 7, 12, 9}, "6f3c2b6850156b637e3cf397e88e572f19f614aadf52f4b4b6f92962033d4b93"}, // enlarge both
        {new int[] {9, 4, 1, 1}, "ba706130b54486f019e1b3f2af20bf5495bc7b63e32f4f0269d14c8426e04ab5"}, // to one pixel
        {new int[] {1, 1, 4, 3}, "4b1cc053e42d82b07188e3ad6746149f6908c8b6dca0a90c3d428908520a3d28"}, // from one pixel
        {new int[] {6, 6, 6, 2}, "d3fb010fd6b3cea31fefa48fef9f88ee8aedefa7c7e37852d783a08831428f15"}, // vertical pass only
        {new int[] {6, 6, 2, 6}, "b80a7b0c1549bfac241924dbac8fcefde9447bcd111a3f806a1126a539400313"}, // horizontal pass only
        {new int[] {10, 3, 4, 1}, "a6a8931b21387a85129a90094244a090f9ef3f0c58b5c3754ff98d139c743da0"}, // 1-px output height
        {new int[] {8, 20, 7, 5}, "ccd685e75140dbc57df9cc5af38339c641785a0017c8c341c01aaedbb79be73f"}, // Pillow 13: vertical first
        {new int[] {20, 8, 5, 7}, "6e5906e9984efe94c37b707d4d4c84de2a17884cec2c11d371a5258436fcc3e1"}, // wide, H first
        {new int[] {64, 48, 17, 13}, "7035ccc5ea3f5a95988476588e824aa6349659d30d74404a477a408d543808f8"}, // fractional shrink
        {new int[] {13, 9, 40, 31}, "802ec62ee590f03e1988c32a4de39faf6b2cfeac70173a2c5df248f4299ee575"}, // fractional enlarge
        {new int[] {1, 30, 5, 4}, "ae02f54045b5a6ec9e4e9f8abc767f920b0dec6af96010d2059df404aaf2bcb0"}, // 1-px wide input
        {new int[] {30, 1, 4, 5}, "fc54766eb7c929cdef83a5c9488e5833e71a31a5d293fc9307e8939bc5b9dac8"}, // 1-px high input
    };

    @Test
    public void matchesPillowOnHandMadeCases() {
        for (Object[] c : CASES) {
            int[] s = (int[]) c[0];
            byte[] out = PillowResize.resizeRgb(pattern(s[0], s[1]), s[0], s[1], s[2], s[3]);
            assertEquals(s[2] * s[3] * 3, out.length);
            assertEquals("resize " + s[0] + "x" + s[1] + " -> " + s[2] + "x" + s[3], c[1], Sha256.hex(out));
        }
    }

    @Test
    public void matchesPillowBytesForTinyShrinks() {
        assertArrayEquals(bytes(108, 136, 143, 135, 132, 140, 132, 127, 132, 117, 145, 117, 128, 126, 114, 134, 124, 118),
                PillowResize.resizeRgb(pattern(7, 5), 7, 5, 3, 2));
        assertArrayEquals(bytes(126, 126, 133), PillowResize.resizeRgb(pattern(9, 4), 9, 4, 1, 1));
        assertArrayEquals(bytes(119, 137, 142, 132, 134, 136, 123, 125, 127, 98, 102, 130),
                PillowResize.resizeRgb(pattern(10, 3), 10, 3, 4, 1));
    }

    @Test
    public void sameSizeIsAnExactCopy() {
        byte[] in = pattern(3, 2);
        byte[] out = PillowResize.resizeRgb(in, 3, 2, 3, 2);
        assertArrayEquals(in, out);
        assertNotSame(in, out);
        assertEquals("418540f72d9c079f8c76a6542af7163225045d72838fa12a8769e2ea6d388c0e", Sha256.hex(out));
    }

    @Test
    public void argbInputDropsAlphaAndEqualsRgbInput() {
        int w = 11;
        int h = 7;
        byte[] rgb = pattern(w, h);
        int[] argb = new int[w * h];
        for (int i = 0; i < argb.length; i++) {
            int alpha = (i * 29) & 255; // alpha must not matter, as Image.convert("RGB") drops it
            argb[i] = alpha << 24 | (rgb[i * 3] & 255) << 16 | (rgb[i * 3 + 1] & 255) << 8 | (rgb[i * 3 + 2] & 255);
        }
        assertArrayEquals(PillowResize.resizeRgb(rgb, w, h, 5, 9), PillowResize.resizeArgb(argb, w, h, 5, 9));
    }

    @Test
    public void passOrderFollowsPillow13() {
        assertTrue(PillowResize.verticalFirst(60, 50, 36, 1)); // 49 > 48
        assertFalse(PillowResize.verticalFirst(60, 50, 36, 2)); // 48 is not > 48
        assertTrue(PillowResize.verticalFirst(60, 50, 100, 49)); // width grows, height shrinks
        assertFalse(PillowResize.verticalFirst(60, 50, 100, 60)); // both grow
        assertFalse(PillowResize.verticalFirst(60, 50, 30, 40)); // width shrinks more
    }

    @Test
    public void coefficientsAreNormalizedFixedPoint() {
        PillowResize.Coefficients c = PillowResize.precompute(100, 0f, 100f, 7);
        for (int i = 0; i < 7; i++) {
            long sum = 0;
            for (int k = 0; k < c.bounds[i * 2 + 1]; k++) {
                sum += c.weights[i * c.ksize + k];
            }
            // Each weight rounds separately, so the sum is 1.0 within half a unit per tap.
            assertTrue("row " + i + " sums to " + sum, Math.abs(sum - (1 << PillowResize.PRECISION_BITS)) <= c.ksize);
        }
    }

    @Test
    public void rejectsBadSizes() {
        assertThrows(IllegalArgumentException.class, () -> PillowResize.resizeRgb(new byte[12], 2, 2, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> PillowResize.resizeRgb(new byte[11], 2, 2, 1, 1));
    }

    static byte[] bytes(int... values) {
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (byte) values[i];
        }
        return out;
    }
}
