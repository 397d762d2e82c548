package dev.edgetl.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** The k best classes of a score vector: higher score first, ties broken by the lower index. */
public final class TopK {
    /** One ranked class. */
    public static final class Prediction {
        public final int index;
        public final float score;
        public final String label;

        public Prediction(int index, float score, String label) {
            this.index = index;
            this.score = score;
            this.label = label;
        }

        @Override
        public String toString() {
            return "Prediction(index=" + index + ", label=" + label + ", score=" + score + ")";
        }
    }

    private TopK() {}

    /**
     * Ranks {@code scores} (no softmax: the model already outputs probabilities) and keeps {@code k}.
     *
     * <p>The order equals NumPy's {@code np.argsort(-scores, kind="stable")[:k]}. NaN scores rank last.
     *
     * @param labels names by index, or {@code null}; a missing name becomes {@code "class_<i>"}
     */
    public static List<Prediction> of(float[] scores, int k, List<String> labels) {
        if (k < 0) {
            throw new IllegalArgumentException("k must be >= 0. Received: k=" + k);
        }
        int keep = Math.min(k, scores.length);
        // Selection keeps it simple and O(n * k); k is 3 and n is a classifier's class count.
        boolean[] taken = new boolean[scores.length];
        List<Prediction> out = new ArrayList<>(keep);
        for (int r = 0; r < keep; r++) {
            int best = -1;
            for (int i = 0; i < scores.length; i++) {
                if (taken[i]) {
                    continue;
                }
                if (best < 0 || better(scores[i], scores[best])) {
                    best = i; // strictly better only, so the lower index wins a tie
                }
            }
            taken[best] = true;
            String label = labels != null && best < labels.size() ? labels.get(best) : "class_" + best;
            out.add(new Prediction(best, scores[best], label));
        }
        return Collections.unmodifiableList(out);
    }

    private static boolean better(float a, float b) {
        if (Float.isNaN(a)) {
            return false;
        }
        return Float.isNaN(b) || a > b;
    }
}
