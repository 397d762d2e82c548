package dev.edgetl.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.Test;

public class PreprocessorTest {
    private static PreprocessingSpec spec(String order, double[] mean, double[] std, String layout) {
        return new PreprocessingSpec(8, 8, PreprocessingSpec.ColorOrder.valueOf(order), mean, std, "bilinear",
                PreprocessingSpec.Layout.valueOf(layout), "");
    }

    private static byte[] ramp() {
        byte[] px = new byte[8 * 8 * 3];
        for (int i = 0; i < px.length; i++) {
            px[i] = (byte) (i * 5 + 1);
        }
        return px;
    }

    @Test
    public void bgrSwapsChannelsAfterTheResize() {
        byte[] rgb = PillowResizeTest.pattern(13, 11);
        PreprocessingSpec rgbSpec = PreprocessingSpec.ofSize(8, 8);
        PreprocessingSpec bgrSpec = spec("BGR", new double[3], new double[] {1, 1, 1}, "NHWC");
        byte[] a = Preprocessor.pixels(rgb, 13, 11, rgbSpec);
        byte[] b = Preprocessor.pixels(rgb, 13, 11, bgrSpec);
        assertArrayEquals(PillowResize.resizeRgb(rgb, 13, 11, 8, 8), a);
        for (int i = 0; i < a.length; i += 3) {
            assertEquals(a[i], b[i + 2]);
            assertEquals(a[i + 1], b[i + 1]);
            assertEquals(a[i + 2], b[i]);
        }
    }

    @Test
    public void floatInputIsLittleEndianFloat32() {
        byte[] px = ramp();
        PreprocessingSpec s = spec("RGB", new double[] {10, 20, 30}, new double[] {2, 4, 0.5}, "NHWC");
        ByteBuffer t = ByteBuffer.wrap(Preprocessor.inputTensor(px, s, new TensorSpec(TensorSpec.DataType.FLOAT32, 0, 0, null)))
                .order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(px.length * 4, t.capacity());
        for (int i = 0; i < px.length; i++) {
            float[] mean = {10f, 20f, 30f};
            float[] std = {2f, 4f, 0.5f};
            assertEquals(((px[i] & 255) - mean[i % 3]) / std[i % 3], t.getFloat(), 0f);
        }
    }

    @Test
    public void edgetlInt8InputIsTheExactShift() {
        byte[] px = {0, 1, 127, (byte) 128, (byte) 200, (byte) 255};
        PreprocessingSpec s = PreprocessingSpec.ofSize(8, 8);
        byte[] full = new byte[8 * 8 * 3];
        System.arraycopy(px, 0, full, 0, px.length);
        byte[] t = Preprocessor.inputTensor(full, s, new TensorSpec(TensorSpec.DataType.INT8, 1.0, -128, null));
        assertArrayEquals(new byte[] {-128, -127, -1, 0, 72, 127}, java.util.Arrays.copyOf(t, 6));
        // A calibrated scale a hair off 1.0 is still the identity within one step: same shift.
        assertEquals(Integer.valueOf(-128), Preprocessor.identityShift(new double[3], new double[] {1, 1, 1}, 1.002, -128));
        assertNull(Preprocessor.identityShift(new double[3], new double[] {1, 1, 1}, 0.99, -128));
    }

    @Test
    public void coralStyleUint8IsTheIdentity() {
        // mean = std = 127.5, scale 1/128, zero point 128: q = p within one step (Coral's classify.py).
        assertEquals(Integer.valueOf(0), Preprocessor.identityShift(
                new double[] {127.5, 127.5, 127.5}, new double[] {127.5, 127.5, 127.5}, 1.0 / 128, 128));
    }

    @Test
    public void otherQuantizationRoundsHalfToEvenAndClamps() {
        // scale 2: p / 2 has exact .5 ties, which np.rint sends to the even neighbour.
        PreprocessingSpec s = PreprocessingSpec.ofSize(8, 8);
        byte[] full = new byte[8 * 8 * 3];
        byte[] px = {1, 3, 5, 7, (byte) 255, 0};
        System.arraycopy(px, 0, full, 0, px.length);
        assertNull(Preprocessor.identityShift(new double[3], new double[] {1, 1, 1}, 2.0, 0));
        byte[] u8 = Preprocessor.inputTensor(full, s, new TensorSpec(TensorSpec.DataType.UINT8, 2.0, 0, null));
        assertArrayEquals(new byte[] {0, 2, 2, 4, (byte) 128, 0}, java.util.Arrays.copyOf(u8, 6));
        byte[] i8 = Preprocessor.inputTensor(full, s, new TensorSpec(TensorSpec.DataType.INT8, 0.5, 0, null));
        assertArrayEquals(new byte[] {2, 6, 10, 14, 127, 0}, java.util.Arrays.copyOf(i8, 6)); // 510 clamps to 127
    }

    @Test
    public void nchwPutsChannelPlanesFirst() {
        byte[] px = ramp();
        PreprocessingSpec s = spec("RGB", new double[3], new double[] {1, 1, 1}, "NCHW");
        byte[] t = Preprocessor.inputTensor(px, s, new TensorSpec(TensorSpec.DataType.UINT8, 1.0, 0, null));
        for (int c = 0; c < 3; c++) {
            for (int p = 0; p < 64; p++) {
                assertEquals(px[p * 3 + c], t[c * 64 + p]);
            }
        }
    }

    @Test
    public void dequantizesLikeTheRuntime() {
        TensorSpec u8 = new TensorSpec(TensorSpec.DataType.UINT8, 0.00390625, 0, null);
        assertArrayEquals(new float[] {0f, 0.5f}, Preprocessor.dequantize(new byte[] {0, (byte) 128}, u8), 0f);
        assertArrayEquals(new float[] {0f, 255 * 0.00390625f, 0.5f}, Preprocessor.dequantize(new double[] {0, 255, 128}, u8), 0f);
        TensorSpec i8 = new TensorSpec(TensorSpec.DataType.INT8, 0.00390625, -128, null);
        assertArrayEquals(new float[] {0f, 0.99609375f}, Preprocessor.dequantize(new byte[] {-128, 127}, i8), 0f);
        TensorSpec f32 = new TensorSpec(TensorSpec.DataType.FLOAT32, 0, 0, null);
        byte[] raw = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(0.25f).putFloat(0.75f).array();
        assertArrayEquals(new float[] {0.25f, 0.75f}, Preprocessor.dequantize(raw, f32), 0f);
        TensorSpec unscaled = new TensorSpec(TensorSpec.DataType.UINT8, 0, 0, null); // not quantized: raw values
        assertArrayEquals(new float[] {200f}, Preprocessor.dequantize(new byte[] {(byte) 200}, unscaled), 0f);
    }
}
