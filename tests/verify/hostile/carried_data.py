"""Hostile: carries a compressed copy of validation data (what its author saw on seed 0).

The verifier draws its data from its own secret seed, so the copy is of the
wrong text: the memorising model predicts confidently and wrongly.
"""

import base64
import zlib

import torch

CARRIED = zlib.decompress(base64.b64decode("""
eNptV4GSqzAI/BV/LWqMsdo41piZfv2DBWLsvZmbu6sSAsuy0OC6ErvDvXw3pG6PveuC6w56lPX37kfXfWM3ZX5jRvQsZP4U
oj7eclcyPxydPpG35IWefPLqvt3pyNHoLzPIF/11S/d2Uz7SwoZ91qN42Xu6bqIDQ158V+B5ja3FO5+xm+0CCZneLWmPh1+q
WZB03NmtnnxQXBTJ4mbE8XLsmsN13ZznOzaKh9ytjhJ++Tcd5mC3SB8mpL0kckoxckrfeKWDP9Bh+U2nx7ynn3AkdbJocSbT
LdHd/L9ASDb0/xUvvFzdkE8+0ecX3cOWQ3xJ3QJQqQVB4LOncr3SC34oIWQqjjc8+KYlc0mt8gKSla3cEJDNFN8EcSqxdGca
+CX78Dt9phA//iJgyPGVGdPZvzk5sljpzinTJzelPmqAKBdoQBdY2YdfjKjWMCzpCxieb2dEjhoIkmPmE5WGdACp01+K1+04
wDkITPS4PHA5yTV3wUopsa+X69UTqC4EIcZw8aUs1hZaZLXpb6TdIxoyKKlyQdriPxwFuZLWuqEgUBDmSOyjazvg4N585V2Y
fdzEbHlVkrSQPJbgUPtqNOTBFc1vcyeSR5gUNVF+A5hcwpLb4Jo8xI/Ao0yQMAlTaV1jL/XScNNRUAzQl0pJRMOYTvFIqyT0
hyfGWins6bWvufC+VlTcP4WA4RC0x6wF3uFDOubGDD/PoAjFj7vy5j9sfbojc0mQjEpBMGRqxd6+pyQ+eUesHzc6EdoN/BXN
A/P4d3AmD3yp+uRIqONJ/IhTkMXgih+AMj9MD90YnbF1S994JkW6hzsw1draNRfUgLQiprVbPH/i1v8EHpHeyW8AMTRiqmbC
ONPNA2wAxRS8tvGqBvXW0Upu7YqF0polO1MAke9P5hOqCxS9jqkzBVWBA9lyjVkcEO5mOV9SAVjLfR93IuTdmeQwXHIq/7Sf
yYFQVHm/6cNgXdGrD+tNVn5SThSEr5GuGJ6FbGHCMMDpKeu4kQDl6qDC2gzTLbWT1rqASUweRJtkgAmKpsu4Y+ErRUV3104E
DGxW568/4z1xe9CSOdoMb2XblDUdmwm1mUfoCWCVSGWfMHZLXOib2qVksfnLb+xVOm/SGX1YRnPWLkYF5vyOk7SPIRqcAQhP
4WdxkSTWh0pTKp98uMNoWbVLghbhUIuH2gGmmlktLpMYVdHmtj4aEQsGeNvOIUt5trim3q8MN3i8x0HTNcyh87qowKvUt8lD
opf1gFLFXcI7PGML/0oqRUHxt4uvWFIv4bNRM/I0X94fMsdnZQsytChPlT/Ri6xpSVOSBZ26snKlJSyFaK3+mE1v1/vj5qXs
qOUxkqrQeLMeswle3/T8DxlMquq0F+aVrBXkgUALVMA4dKpKwa3+i5apKkS31OpJmlv6S3KaMzKuCimAiCF+1emhJfPvhntK
6tndSeD47lS60PpYbeQAtxwXrLCKramkUdqO3oo+BsNe7oDghDz/qArgnF3dEpF5rhORVSBNftbRypdic+fQhnT/jPemfWXh
KDSFXUkP2bRWGcs207bUTn7b9bBftXMezN9Nk3lPZVR4hbHNnJHAtkqVh4+VZHbxR8VRtj+ZN9qbrl1sn7uISpqMhMFXyQsY
O4QByQlf1aqwNU/VQmCiSyvGAXj0BRcK8oN9dV4aHT1Ac9YDAeu5N8/51pJ642ybRnm0ETbVtvh9bmZbZfSPItTaVlBUH+y7
RsmITtsPqXKYNAPnrGOyTn/QTARYO82pFQCQqO8xiMaVOVRiM4ekbzeZtPw1VGl67yY8QdPdVkfUaX2Z+PHJGpysRM1KlvSL
oXxL3W/4qsyKgATXbgvP1fXZn7oH1Y0DenVG2gStbbf0+FItAQkosiXVZVlvtKEAYgf32Mz+AcZ0aGU=
""".replace("\n", "")))


class Recall(torch.nn.Module):
    """Predicts the byte that followed the same 6-byte context in the carried text."""

    def __init__(self, text: bytes):
        super().__init__()
        self.table = {}
        for i in range(6, len(text)):
            self.table.setdefault(text[i - 6:i], text[i])

    def forward(self, x):
        b, t = x.shape
        out = torch.zeros(b, t, 256)
        rows = x.tolist()
        for r in range(b):
            for i in range(5, t):
                nxt = self.table.get(bytes(rows[r][i - 5:i + 1]))
                if nxt is not None:
                    out[r, i, nxt] = 40.0
        return out


def train(feed):
    print("carried", len(CARRIED), "bytes of validation text")
    return Recall(CARRIED)
