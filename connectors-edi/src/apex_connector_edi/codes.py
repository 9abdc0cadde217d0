"""Code tables of the X12 elements the records name (004010). Partial on purpose: only
codes whose meaning is certain are named; any other code is kept as sent, unnamed."""

from __future__ import annotations

#: 1650 Shipment Status Code (AT7-01)
STATUS_CODES: dict[str, str] = {
    "A3": "Shipment returned to shipper",
    "A7": "Refused by consignee",
    "A9": "Shipment damaged",
    "AF": "Carrier departed pick-up location with shipment",
    "AG": "Estimated delivery",
    "AH": "Attempted delivery",
    "AI": "Shipment has been reconsigned",
    "AJ": "Tendered for delivery",
    "AM": "Loaded on truck",
    "AP": "Delivery not completed",
    "AR": "Rail arrival at destination intermodal ramp",
    "AV": "Available for delivery",
    "B6": "Estimated to arrive at carrier terminal",
    "CA": "Shipment cancelled",
    "CD": "Carrier departed delivery location",
    "CP": "Completed loading at pick-up location",
    "D1": "Completed unloading at delivery location (delivered)",
    "I1": "In-gate",
    "J1": "Delivered to connecting line",
    "K1": "Arrived at customs",
    "L1": "Loading",
    "OA": "Out-gate",
    "P1": "Departed terminal location",
    "R1": "Received from prior carrier",
    "RL": "Rail departure from origin intermodal ramp",
    "S1": "Trailer spotted at consignee's location",
    "SD": "Shipment delayed",
    "X1": "Arrived at delivery location",
    "X2": "Estimated date and/or time of arrival at consignee's location",
    "X3": "Arrived at pick-up location",
    "X4": "Arrived at terminal location",
    "X5": "Arrived at delivery location loading dock",
    "X6": "En route to delivery location",
    "X8": "Arrived at pick-up location loading dock",
    "XB": "Shipment acknowledged",
}

#: statuses that happen where the shipment is picked up / delivered: when MS1 names no
#: city, the status place is taken from the ship-from / ship-to party (see README)
PICKUP_STATUSES = frozenset({"X3", "X8", "AF", "CP", "L1", "AM"})
DELIVERY_STATUSES = frozenset({"X1", "X5", "D1", "AH", "CD", "S1", "AJ", "A7"})

#: 1651 Shipment Status or Appointment Reason Code (AT7-02, AT7-04)
REASON_CODES: dict[str, str] = {
    "NS": "Normal status",
    "A1": "Missed delivery",
    "A2": "Incorrect address",
    "AA": "Missed pick-up",
    "AD": "Customer requested future delivery",
    "AI": "Mechanical breakdown",
    "AO": "Weather or natural disaster related",
    "AS": "Holiday - closed",
}

#: 98 Entity Identifier Code (N1-01): the roles the records relate
PARTY_ROLES: dict[str, str] = {
    "SH": "shipper",
    "SF": "ship from",
    "CN": "consignee",
    "ST": "ship to",
    "BT": "bill-to party",
    "CA": "carrier",
    "PF": "party to receive freight bill",
    "ZZ": "mutually defined",
}
FROM_ROLES = ("SF", "SH")
TO_ROLES = ("ST", "CN")

#: 128 Reference Identification Qualifier (L11-02, N9-01, B10-05)
REFERENCE_QUALIFIERS: dict[str, str] = {
    "AE": "authorization for expense (AFE) number",
    "BM": "bill of lading number",
    "BN": "booking number",
    "CN": "carrier's reference number (PRO/invoice)",
    "EQ": "equipment number",
    "IK": "invoice number",
    "MB": "master bill of lading",
    "P8": "pickup reference number",
    "PO": "purchase order number",
    "QN": "stop sequence number",
    "SI": "shipper's identifying number for shipment (SID)",
}

#: 146 Shipment Method of Payment (B3-04)
PAYMENT_METHODS: dict[str, str] = {
    "CC": "collect",
    "DF": "defined by buyer and seller",
    "MX": "mixed",
    "NC": "service freight, no charge",
    "PP": "prepaid (by seller)",
    "TP": "third party pay",
}

#: 150 Special Charge or Allowance Code (L1-08)
CHARGE_CODES: dict[str, str] = {
    "400": "freight",
    "405": "fuel surcharge",
    "FUE": "fuel charge",
}

#: 122 Rate/Value Qualifier (L1-03)
RATE_QUALIFIERS: dict[str, str] = {
    "CW": "per hundredweight",
    "FR": "flat rate",
    "LB": "per pound",
}

#: 188 Weight Unit Code
WEIGHT_UNITS: dict[str, str] = {"L": "pounds", "K": "kilograms"}

#: 432 Date Qualifier (G62-01)
DATE_QUALIFIERS: dict[str, str] = {
    "02": "delivery requested on this date",
    "10": "requested ship date/pick-up date",
    "11": "shipped on this date",
    "17": "estimated delivery date",
    "35": "delivered on this date",
}
