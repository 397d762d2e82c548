package dev.edgetl.core;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** SHA-256 hex digests of tensors, the checksums the golden vectors record. */
public final class Sha256 {
    private Sha256() {}

    /** Lower-case hex SHA-256 of {@code bytes}, as Python's {@code hashlib.sha256(b).hexdigest()}. */
    public static String hex(byte[] bytes) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(bytes);
            StringBuilder sb = new StringBuilder(64);
            for (byte b : digest) {
                sb.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
            }
            return sb.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required on every Java platform", e);
        }
    }
}
