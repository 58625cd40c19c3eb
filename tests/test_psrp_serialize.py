"""The sandbox serialises Exchange objects the way an Exchange remoting endpoint does, and the
PSRP transport decodes them back to the plain values the REST transport gives."""
from __future__ import annotations

import datetime as dt
from xml.etree import ElementTree as ET

from exocm.core.bridge.psrp import RawOutput, decode_output
from exocm.sandbox.psrp.serialize import record_to_clixml
from psrpcore import PSRemotingCrypto
from psrpcore.types import deserialize
from pypsrp.serializer import Serializer

RECORD = {
    "Identity": "Ann O'Brien",
    "UserPrincipalName": "ann@contoso.com",
    "RecipientTypeDetails": "RemoteUserMailbox",
    "PreviousRecipientTypeDetails": "None",
    "ExchangeGuid": "9C1F6A0E-1B2C-4D5E-8F90-0123456789AB",
    "EmailAddresses": ["SMTP:ann@contoso.com", "smtp:ann@contoso.mail.onmicrosoft.com", "X500:/o=ExchangeLabs/cn=a_x"],
    "ExtensionCustomAttribute1": ["a", "b"],
    "WhenChanged": dt.datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC),
    "IsDirSynced": True,
    "CustomAttribute1": "tab\there & <angle> _x0041_ \U0001F600",
    "CustomAttribute2": None,
    "Count": 7,
}


def _ps(xml: bytes) -> object:
    return deserialize(ET.fromstring(xml), PSRemotingCrypto())


def test_mailbox_carries_exchange_type_names_enum_guid_and_typed_collection() -> None:
    xml = record_to_clixml(RECORD, "Get-Mailbox")
    wire = ET.fromstring(xml)
    assert wire.findtext("TN/T") == "Deserialized.Microsoft.Exchange.Data.Directory.Management.Mailbox"
    obj = _ps(xml)
    names = obj.PSTypeNames  # type: ignore[attr-defined]
    assert names[0].endswith(".Microsoft.Exchange.Data.Directory.Management.Mailbox")
    assert names[-1].endswith("System.Object")
    rtd = obj.RecipientTypeDetails  # type: ignore[attr-defined]
    assert str(rtd) == "RemoteUserMailbox"
    assert rtd.PSTypeNames[0].endswith("Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails")
    assert b"<I64>2147483648</I64>" in xml  # the enum's value travels with its name
    addresses = obj.EmailAddresses  # type: ignore[attr-defined]
    assert addresses.PSTypeNames[0].endswith("Microsoft.Exchange.Data.ProxyAddressCollection")
    assert list(addresses) == RECORD["EmailAddresses"]
    assert str(obj.ExchangeGuid) == "9c1f6a0e-1b2c-4d5e-8f90-0123456789ab"  # type: ignore[attr-defined]
    assert obj.WhenChanged == RECORD["WhenChanged"]  # type: ignore[attr-defined]
    assert obj.CustomAttribute1 == RECORD["CustomAttribute1"]  # type: ignore[attr-defined]


def test_selected_object_keeps_typed_values_as_note_properties() -> None:
    xml = record_to_clixml({"UserPrincipalName": "a@b.c", "EmailAddresses": ["SMTP:a@b.c"]}, "Get-RemoteMailbox",
                           selected=True)
    obj = _ps(xml)
    assert ET.fromstring(xml).findtext("TN/T") == (
        "Deserialized.Selected.Microsoft.Exchange.Data.Directory.Management.RemoteMailbox")
    assert b"<MS>" in xml and b"<Props>" not in xml
    assert list(obj.EmailAddresses) == ["SMTP:a@b.c"]  # type: ignore[attr-defined]


def test_transport_decodes_pypsrp_objects_to_rest_shaped_values() -> None:
    pypsrp_obj = Serializer().deserialize(record_to_clixml(RECORD, "Get-Mailbox").decode())
    record = decode_output(pypsrp_obj)
    assert record["RecipientTypeDetails"] == "RemoteUserMailbox"
    assert record["PreviousRecipientTypeDetails"] == "None"
    assert record["ExchangeGuid"] == "9c1f6a0e-1b2c-4d5e-8f90-0123456789ab"
    assert record["EmailAddresses"] == RECORD["EmailAddresses"]
    assert record["ExtensionCustomAttribute1"] == ["a", "b"]
    assert record["WhenChanged"] == RECORD["WhenChanged"] and record["WhenChanged"].tzinfo is not None
    assert record["IsDirSynced"] is True and record["Count"] == 7 and record["CustomAttribute2"] is None
    assert record["CustomAttribute1"] == RECORD["CustomAttribute1"]
    assert record["Identity"] == "Ann O'Brien"


def test_fast_clixml_decoder_agrees_with_pypsrps_object_model() -> None:
    for selected in (False, True):
        xml = record_to_clixml(RECORD, "Get-Mailbox", selected=selected).decode()
        assert decode_output(RawOutput(xml)) == decode_output(Serializer().deserialize(xml))


def test_nested_objects_show_their_name_and_escapes_are_undone() -> None:
    xml = ('<Obj RefId="0"><TN RefId="0"><T>Microsoft.Exchange.Data.Directory.Management.Mailbox</T></TN>'
           "<ToString>Ann</ToString><Props>"
           '<Obj N="Identity" RefId="1"><TN RefId="1"><T>Microsoft.Exchange.Data.Directory.ADObjectId</T></TN>'
           '<ToString>contoso.com/Users/Ann</ToString><Props><S N="Name">Ann</S></Props></Obj>'
           '<S N="Notes">line1_x000A_line2 _x005F_x0041_ _xD83D__xDE00_</S>'
           '<Ref N="Again" RefId="1" /><Nil N="Empty" /><DT N="When">2024-05-06T07:08:09.1234567+02:00</DT>'
           "</Props></Obj>")
    record = decode_output(RawOutput(xml))
    assert record["Identity"] == "contoso.com/Users/Ann" and record["Again"] == "contoso.com/Users/Ann"
    assert record["Notes"] == "line1\nline2 _x0041_ \U0001F600"
    assert record["Empty"] is None
    assert record["When"] == dt.datetime(2024, 5, 6, 5, 8, 9, 123456, tzinfo=dt.UTC)
