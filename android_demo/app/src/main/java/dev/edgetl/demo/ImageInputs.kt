package dev.edgetl.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.camera.core.ImageProxy
import androidx.exifinterface.media.ExifInterface
import dev.edgetl.core.ImageOps
import dev.edgetl.core.PillowResize
import java.io.IOException
import java.nio.Buffer
import java.nio.ByteBuffer

/** Python refuses larger images (edgetl.runtime.image.MAX_IMAGE_PIXELS); so does the app. */
private const val MAX_IMAGE_PIXELS = 64_000_000L

/**
 * Upright RGB of a camera frame. The analysis use case is configured for RGBA_8888 output, so
 * plane 0 holds R, G, B, A bytes; the frame is then turned by the rotation CameraX reports.
 */
fun ImageProxy.toUprightRgb(): ImageOps.Rgb {
    val plane = planes[0]
    val rgb = ImageOps.rgbaToRgb(plane.buffer, width, height, plane.rowStride, plane.pixelStride)
    return ImageOps.rotateClockwise(ImageOps.Rgb(rgb, width, height), imageInfo.rotationDegrees)
}

/**
 * Decodes a picked photo to upright RGB as `edgetl.runtime.image.load_image` does: full
 * resolution, EXIF orientation applied, alpha dropped without premultiplying, and no colour-space
 * conversion (Pillow ignores embedded ICC profiles, so the raw decoded values are kept:
 * `copyPixelsToBuffer` rather than `getPixels`, which converts to sRGB).
 *
 * PNG decodes to the same pixels as Pillow; JPEG decoders differ slightly between libjpeg builds,
 * so a JPEG's pixels (not the resize) may differ from the Python side by a level here and there.
 */
fun decodeUprightRgb(resolver: ContentResolver, uri: Uri): ImageOps.Rgb {
    val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
    resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, bounds) }
    if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IOException("Not a readable image: $uri")
    if (bounds.outWidth.toLong() * bounds.outHeight > MAX_IMAGE_PIXELS) {
        throw IOException("Image is too large to decode safely (${bounds.outWidth}x${bounds.outHeight} pixels)")
    }
    val options = BitmapFactory.Options().apply {
        inPreferredConfig = Bitmap.Config.ARGB_8888
        inPremultiplied = false
        inScaled = false
    }
    val decoded = resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, options) }
        ?: throw IOException("Not a readable image: $uri")
    val bitmap = if (decoded.config == Bitmap.Config.ARGB_8888) decoded else decoded.copy(Bitmap.Config.ARGB_8888, false).also { decoded.recycle() }
    try {
        val buffer = ByteBuffer.allocate(bitmap.rowBytes * bitmap.height)
        bitmap.copyPixelsToBuffer(buffer)
        (buffer as Buffer).rewind()
        val rgb = ImageOps.rgbaToRgb(buffer, bitmap.width, bitmap.height, bitmap.rowBytes, 4)
        val orientation = resolver.openInputStream(uri)?.use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        } ?: ExifInterface.ORIENTATION_NORMAL
        return ImageOps.applyExifOrientation(ImageOps.Rgb(rgb, bitmap.width, bitmap.height), orientation)
    } finally {
        bitmap.recycle()
    }
}

/** A bitmap of upright RGB for display, at most [maxSide] pixels on its long side. */
fun ImageOps.Rgb.toDisplayBitmap(maxSide: Int = 1024): Bitmap {
    val scale = minOf(1.0, maxSide.toDouble() / maxOf(width, height))
    val w = maxOf(1, (width * scale).toInt())
    val h = maxOf(1, (height * scale).toInt())
    val small = if (w == width && h == height) pixels else PillowResize.resizeRgb(pixels, width, height, w, h)
    val argb = IntArray(w * h) { i ->
        (0xFF shl 24) or ((small[i * 3].toInt() and 0xFF) shl 16) or
            ((small[i * 3 + 1].toInt() and 0xFF) shl 8) or (small[i * 3 + 2].toInt() and 0xFF)
    }
    return Bitmap.createBitmap(argb, w, h, Bitmap.Config.ARGB_8888)
}
