"""Regenerate the bundled demo maildir (tix/data/demo/maildir/): realistic support mail
for an Indonesian online shop, in Indonesian and English.

    python tools/make_demo_maildir.py        # rewrites tix/data/demo/maildir/new/*

The output is deterministic and committed; tix never runs this at run time. It holds:
refunds / pengembalian dana, pembayaran (one with a PDF transfer receipt), pengiriman,
a reply thread (In-Reply-To and a subject tag), a quoted reply, an HTML-only message,
an out-of-office auto-reply, a newsletter, a bounce (delivery-status report), a
calendar invite, and one malformed file (an Outlook .msg, not mail) that ends in
quarantine.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "tix" / "data" / "demo" / "maildir"
T0 = datetime(2026, 11, 23, 1, 5, tzinfo=timezone.utc)
SUPPORT = "Toko Contoh <support@toko.example>"

CUSTOMERS = {
    "sari": "Sari Wulandari <sari.wulandari@gmail.example>",
    "budi": "Budi Santoso <budi.s@yahoo.example>",
    "dewi": "Dewi Anggraini <dewi.anggraini@outlook.example>",
    "tom": "Tom Baker <tom.baker@mail.example>",
    "rina": "Rina Kusuma <rina.kusuma@gmail.example>",
    "agus": "Agus Prasetyo <agus.prasetyo@kantor.example>",
    "maria": "Maria Santos <maria.santos@mail.example>",
    "putu": "Putu Ayu <putu.ayu@gmail.example>",
    "andi": "Andi Wijaya <andi.wijaya@gmail.example>",
    "lisa": "Lisa Chen <lisa.chen@company.example>",
    "hendra": "Hendra Gunawan <hendra.g@gmail.example>",
    "yuni": "Yuni Astuti <yuni.astuti@yahoo.example>",
    "kevin": "Kevin O'Brien <kevin.obrien@mail.example>",
    "fitri": "Fitri Handayani <fitri.h@gmail.example>",
    "joko": "Joko Susilo <joko.susilo@gmail.example>",
    "nadia": "Nadia Putri <nadia.putri@gmail.example>",
}

PLAIN = [
    ("sari", "Pengembalian dana pesanan INV-2026-1101",
     "Selamat pagi,\n\nSaya mau mengajukan pengembalian dana untuk pesanan INV-2026-1101. Sepatu yang saya "
     "terima ukurannya 38, padahal saya pesan 40. Saya sudah coba tukar lewat aplikasi tapi tombolnya tidak "
     "muncul.\n\nMohon dibantu, terima kasih.\n\nSalam,\nSari"),
    ("budi", "Pembayaran sudah transfer tapi status belum berubah",
     "Halo admin,\n\nSaya sudah transfer Rp 1.250.000 ke rekening BCA Toko Contoh kemarin jam 14.10 untuk "
     "pesanan INV-2026-1107, tapi status di aplikasi masih \"Menunggu Pembayaran\". Bukti transfer terlampir.\n\n"
     "Budi"),
    ("tom", "Double charge on my credit card",
     "Hello,\n\nMy Visa card was charged twice for order INV-2026-1112 (IDR 845,000 each). Could you please "
     "refund the duplicate charge? The bank statement shows both transactions on 22 November.\n\nThanks,\nTom"),
    ("dewi", "Paket belum sampai - resi JNE 8823471100",
     "Kak, paket saya dengan resi JNE 8823471100 sudah 8 hari belum sampai. Di tracking terakhir tertulis "
     "\"transit Surabaya\" sejak tanggal 17. Tolong dicek ya kak, barangnya untuk hadiah ulang tahun hari Sabtu."),
    ("rina", "Cara ganti alamat pengiriman",
     "Halo, saya baru saja checkout pesanan INV-2026-1120 tapi alamatnya masih alamat kos lama. Bisa diganti ke "
     "Jl. Dago No. 45, Bandung 40135? Pesanan belum dikirim kok."),
    ("agus", "Permintaan faktur pajak (e-Faktur) untuk PT Maju Jaya",
     "Dengan hormat,\n\nKami dari PT Maju Jaya memerlukan faktur pajak untuk pembelian dengan nomor "
     "INV-2026-1088 dan INV-2026-1090. NPWP perusahaan: 01.234.567.8-901.000.\n\nHormat kami,\nAgus Prasetyo\n"
     "Bagian Keuangan"),
    ("maria", "Wrong item received",
     "Hi there,\n\nI ordered a blue backpack (SKU BP-220-BLU) but received a black one. I'd like an exchange, "
     "not a refund. Should I send it back with JNE or will a courier pick it up?\n\nMaria"),
    ("putu", "Refund belum masuk",
     "Selamat siang. Pengajuan refund saya untuk INV-2026-1043 sudah disetujui tanggal 10 November, tapi "
     "sampai sekarang dana belum masuk ke rekening Mandiri saya. Mohon info estimasinya."),
    ("andi", "Voucher tidak bisa dipakai",
     "Kode voucher HEMAT50 tidak bisa dipakai di checkout, muncul pesan \"voucher tidak berlaku\". Padahal "
     "minimal belanja sudah lebih dari Rp 200.000. Apakah vouchernya sudah habis?"),
    ("lisa", "Bulk order inquiry for 200 units",
     "Good afternoon,\n\nOur company would like to order 200 units of the insulated tumbler (TMB-500) with our "
     "logo printed. Could you send a quotation including delivery to Jakarta Selatan?\n\nBest regards,\n"
     "Lisa Chen\nProcurement"),
    ("hendra", "Barang rusak saat diterima",
     "Admin, blender yang saya terima pecah di bagian tabungnya. Kardusnya juga penyok. Saya minta "
     "penggantian barang ya. Foto sudah saya upload di ulasan pesanan INV-2026-1131."),
    ("yuni", "Pembayaran via QRIS gagal tapi saldo terpotong",
     "Tadi saya bayar pakai QRIS dari GoPay, transaksi gagal tapi saldo GoPay saya terpotong Rp 356.000. "
     "Nomor pesanan INV-2026-1135. Tolong dicek apakah dananya masuk atau akan dikembalikan."),
    ("kevin", "Order cancellation request",
     "Please cancel order INV-2026-1138. I placed it by mistake twice. The other order (INV-2026-1137) is the "
     "correct one."),
    ("fitri", "Estimasi pengiriman ke Makassar",
     "Halo, kalau saya pesan hari ini pakai SiCepat, kira-kira berapa hari sampai ke Makassar? Ongkirnya "
     "berapa untuk 2 kg?"),
    ("joko", "COD tidak tersedia di daerah saya",
     "Kenapa pilihan COD tidak muncul untuk alamat saya di Kabupaten Sleman? Teman saya di kota Yogyakarta "
     "bisa COD."),
    ("nadia", "Pengembalian dana untuk pesanan yang dibatalkan",
     "Pesanan INV-2026-1129 dibatalkan oleh penjual karena stok habis. Dana Rp 489.000 kapan dikembalikan? "
     "Saya bayar pakai kartu kredit BNI."),
    ("tom", "Invoice for order INV-2026-1112",
     "Also, could you send me a proper invoice for INV-2026-1112 with my company name (Baker & Co) on it? "
     "I need it for expenses."),
    ("sari", "Tanya stok warna lain",
     "Kak, sepatu model Runner X ada warna abu-abu ukuran 40 tidak? Di aplikasi cuma ada hitam."),
    ("budi", "Akun saya terkunci",
     "Saya salah memasukkan kata sandi 5 kali dan sekarang akun saya terkunci. Email akun: budi.s@yahoo.example. "
     "Bagaimana cara membukanya?"),
    ("dewi", "Komplain kurir tidak ramah",
     "Kurir yang mengantar tadi siang marah-marah karena saya minta paket ditaruh di pos satpam. Mohon "
     "ditindaklanjuti."),
    ("maria", "Gift wrapping option?",
     "Do you offer gift wrapping? I want to send a present to my friend in Bali directly from your shop."),
    ("rina", "Kode OTP tidak masuk",
     "Saya mau login tapi kode OTP via SMS tidak pernah masuk, sudah coba 3 kali. Nomor saya 0812-3456-7788."),
    ("lisa", "Payment terms for corporate orders",
     "Do you accept payment by bank transfer with 30-day terms for corporate customers? We would need an "
     "invoice in IDR with VAT shown separately."),
    ("hendra", "Garansi blender berapa lama?",
     "Sekalian tanya, garansi resmi blender Philips yang dijual di toko ini berapa lama dan klaimnya ke mana?"),
    ("andi", "Poin member hilang",
     "Poin member saya tadinya 12.500 sekarang jadi 0. Saya tidak pernah menukarkan poin. Tolong dicek."),
    ("putu", "Konfirmasi pembayaran INV-2026-1142",
     "Sudah saya bayar lewat Virtual Account BRI, nomor referensi 8870012345. Mohon dikonfirmasi."),
    ("kevin", "Shipping to Singapore?",
     "Do you ship to Singapore? If so, which courier and roughly how much for a 1 kg parcel?"),
    ("fitri", "Ukuran baju tidak sesuai size chart",
     "Baju ukuran M yang saya terima lebih kecil dari size chart (lingkar dada 88 cm, di chart 96 cm). Boleh "
     "tukar ke L?"),
]


def _msg(frm, subject, body, i, **headers) -> EmailMessage:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = SUPPORT
    m["Subject"] = subject
    m["Date"] = format_datetime(T0 + timedelta(minutes=37 * i))
    m["Message-ID"] = headers.pop("msgid", f"<demo.{i:03d}@{frm.split('@')[1].rstrip('>')}>")
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


def messages() -> list[bytes]:
    out: list[bytes] = []
    for i, (who, subject, body) in enumerate(PLAIN):
        m = _msg(CUSTOMERS[who], subject, body, i)
        if who == "budi" and "transfer" in subject:
            m.add_attachment(_receipt_pdf(), maintype="application", subtype="pdf", filename="bukti-transfer-BCA.pdf")
        out.append(bytes(m))
    n = len(out)
    # a reply thread: Sari answers her own first message (In-Reply-To), quoting it
    first = "<demo.000@gmail.example>"
    out.append(bytes(_msg(CUSTOMERS["sari"], "Re: Pengembalian dana pesanan INV-2026-1101",
                          "Tambahan: nomor rekening saya BCA 1234567890 a.n. Sari Wulandari.\n\n"
                          "Pada Sen, 23 Nov 2026 08.05, Sari Wulandari <sari.wulandari@gmail.example> menulis:\n"
                          "> Saya mau mengajukan pengembalian dana untuk pesanan INV-2026-1101.\n", n,
                          In_Reply_To=first, References=first)))
    # Tom follows up by replying to his own message, English quoting style
    out.append(bytes(_msg(CUSTOMERS["tom"], "Re: Double charge on my credit card",
                          "Any update on this? It has been two days.\n\nOn Mon, 23 Nov 2026 at 09:19, Tom Baker "
                          "<tom.baker@mail.example> wrote:\n> My Visa card was charged twice for order INV-2026-1112\n",
                          n + 1, In_Reply_To="<demo.002@mail.example>")))
    # an HTML-only message from a marketplace partner
    html = EmailMessage()
    html["From"] = "Tokopedia Seller Care <seller-care@marketplace.example>"
    html["To"] = SUPPORT
    html["Subject"] = "Komplain pembeli untuk pesanan TKP-88123"
    html["Date"] = format_datetime(T0 + timedelta(minutes=37 * (n + 2)))
    html["Message-ID"] = "<demo.html.1@marketplace.example>"
    html.set_content("<html><body><p>Halo <b>Toko Contoh</b>,</p><p>Pembeli mengajukan komplain untuk pesanan "
                     "<b>TKP-88123</b>: barang belum diterima.</p><p>Mohon respon dalam 2x24 jam melalui "
                     "<a href=\"https://seller.marketplace.example/komplain/88123\">halaman komplain</a>.</p>"
                     "</body></html>", subtype="html")
    out.append(bytes(html))
    # an encoded-word subject with an en dash and a name with an accent
    out.append(bytes(_msg("José Ramírez <jose.ramirez@mail.example>", "Refund – order INV-2026-1144 (café machine)",
                          "Hello, the coffee machine stopped working after one week. I would like a refund.", n + 3)))
    # a calendar invite from a supplier
    cal = _msg("Andi Supplier <andi@supplier.example>", "Undangan: review stok bulanan",
               "Terlampir undangan rapat review stok bulanan.", n + 4)
    cal.add_attachment("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Review stok bulanan\r\n"
                       "DTSTART:20261127T030000Z\r\nDTEND:20261127T040000Z\r\nLOCATION:Google Meet\r\n"
                       "END:VEVENT\r\nEND:VCALENDAR\r\n", subtype="calendar", filename="invite.ics")
    out.append(bytes(cal))
    # an out-of-office auto-reply (RFC 3834): marked auto, never answered automatically
    out.append(bytes(_msg("Agus Prasetyo <agus.prasetyo@kantor.example>", "Otomatis: Permintaan faktur pajak",
                          "Saya sedang cuti sampai 30 November 2026. "
                          "Untuk hal mendesak hubungi finance@kantor.example.",
                          n + 5, Auto_Submitted="auto-replied", X_Autoreply="yes",
                          In_Reply_To="<demo.999@toko.example>")))
    # a newsletter (List-Id, Precedence: bulk)
    out.append(bytes(_msg("Promo Kurir <newsletter@kurir.example>", "Diskon ongkir 50% minggu ini!",
                          "Nikmati diskon ongkir 50% untuk pengiriman ke seluruh Indonesia.", n + 6,
                          List_Id="<promo.kurir.example>", Precedence="bulk",
                          List_Unsubscribe="<mailto:unsubscribe@kurir.example>")))
    # a bounce of a reply we sent to a mistyped address
    out.append(_bounce(n + 7))
    # a customer reply with the subject tag of ticket #4 (Dewi's shipping ticket) and no thread headers
    out.append(bytes(_msg(CUSTOMERS["dewi"], "Re: Paket belum sampai - resi JNE 8823471100 [#4]",
                          "Paketnya sudah sampai barusan, terima kasih kak!", n + 8)))
    return out


def _receipt_pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
            b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 200]>>endobj\ntrailer<</Root 1 0 R>>\n"
            b"%% Bukti transfer BCA Rp 1.250.000 ke Toko Contoh, 22/11/2026 14:10\n%%EOF\n")


def _bounce(i: int) -> bytes:
    return (f"""From: Mail Delivery Subsystem <MAILER-DAEMON@mx.toko.example>
To: support@toko.example
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(T0 + timedelta(minutes=37 * i))}
Message-ID: <demo.bounce.1@mx.toko.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="=_bounce"

--=_bounce
Content-Type: text/plain; charset=utf-8

This is the mail system at host mx.toko.example.
I'm sorry to have to inform you that your message could not be delivered.

<rina.kusuma@gmial.example>: Host or domain name not found.

--=_bounce
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.toko.example

Final-Recipient: rfc822; rina.kusuma@gmial.example
Action: failed
Status: 5.1.2

--=_bounce
Content-Type: text/rfc822-headers

From: Toko Contoh <support@toko.example>
To: rina.kusuma@gmial.example
Subject: Re: Kode OTP tidak masuk [#22]
Message-ID: <tix.22.0000demo@toko.example>

--=_bounce--
""").replace("\n", "\r\n").encode()


def malformed() -> bytes:
    """The start of an Outlook .msg (a CFB container), saved into the mailbox by mistake."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(24) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00" + bytes(480)


def main() -> None:
    if HERE.exists():
        shutil.rmtree(HERE)
    for sub in ("new", "cur", "tmp"):
        (HERE / sub).mkdir(parents=True)
        (HERE / sub / ".keep").write_bytes(b"")
    msgs = messages()
    msgs.insert(20, malformed())
    for i, raw in enumerate(msgs):
        stamp = int((T0 + timedelta(minutes=37 * i)).timestamp())
        (HERE / "new" / f"{stamp}.M{i:03d}P4242.demo").write_bytes(raw)
    print(f"wrote {len(msgs)} messages to {HERE}")


if __name__ == "__main__":
    main()
