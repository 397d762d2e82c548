package dev.edgetl.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class TopKTest {
    private static int[] indices(List<TopK.Prediction> ps) {
        return ps.stream().mapToInt(p -> p.index).toArray();
    }

    @Test
    public void higherScoreFirstTiesByLowerIndex() {
        float[] s = {0.1f, 0.3f, 0.3f, 0.05f, 0.3f, 0.25f};
        assertEquals(Arrays.toString(new int[] {1, 2, 4}), Arrays.toString(indices(TopK.of(s, 3, null))));
        assertEquals(Arrays.toString(new int[] {1, 2, 4, 5, 0, 3}), Arrays.toString(indices(TopK.of(s, 10, null))));
    }

    @Test
    public void nanRanksLastAndLabelsAttach() {
        List<TopK.Prediction> ps = TopK.of(new float[] {Float.NaN, 0.2f, 0.7f}, 3, Arrays.asList("a", "b", "c"));
        assertEquals(Arrays.toString(new int[] {2, 1, 0}), Arrays.toString(indices(ps)));
        assertEquals("c", ps.get(0).label);
        assertEquals(0.7f, ps.get(0).score, 0f);
        assertEquals("class_1", TopK.of(new float[] {0f, 1f}, 1, Arrays.asList("only")).get(0).label);
        assertEquals(0, TopK.of(new float[] {1f}, 0, null).size());
        assertThrows(IllegalArgumentException.class, () -> TopK.of(new float[] {1f}, -1, null));
    }

    @Test
    public void sha256MatchesTheStandardVector() {
        assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                Sha256.hex("abc".getBytes(java.nio.charset.StandardCharsets.US_ASCII)));
    }
}
