<#
.SYNOPSIS
    Exports on-prem Exchange mailboxes and remote mailboxes for exocm's detection (dual
    mailboxes, ExchangeGuid mismatches, recent on-prem changes, attribute drift).

.DESCRIPTION
    Run in the Exchange Management Shell (on-prem Exchange 2013/2016/2019/SE, or the Exchange
    Management Tools on a hybrid management server). Reads Get-Mailbox and Get-RemoteMailbox
    with -ResultSize Unlimited and writes one CSV with exactly the columns exocm reads:

        UserPrincipalName, PrimarySmtpAddress, Alias, RecipientTypeDetails, ExchangeGuid,
        ArchiveGuid, LegacyExchangeDN, EmailAddresses, WhenChanged, CustomAttribute1-15,
        ExtensionCustomAttribute1-5, DistinguishedName, OrganizationalUnit,
        ExternalDirectoryObjectId, WhenCreated

    Multi-valued properties (EmailAddresses, ExtensionCustomAttribute1-5) are joined with ';'.
    ExchangeGuid and ArchiveGuid are written as plain GUID strings. WhenChanged is written as
    ISO 8601 in UTC (yyyy-MM-ddTHH:mm:ssZ) so the result does not depend on the culture of the
    machine. ExternalDirectoryObjectId is read from the AD attribute
    msDS-ExternalDirectoryObjectId (written back by Entra Connect) when -IncludeEntraObjectId is
    given and the ActiveDirectory module is available; otherwise it is left empty and exocm
    joins on UserPrincipalName, then on addresses.

    The script only reads. It needs the "View-Only Recipients" role (or Recipient Management).

.PARAMETER Path
    The CSV file to write. Default: .\exocm-onprem.csv

.PARAMETER IncludeEntraObjectId
    Also read msDS-ExternalDirectoryObjectId from AD (needs the ActiveDirectory PowerShell
    module and read access to the attribute). Strongest join key; recommended.

.PARAMETER DomainController
    Passed to Get-Mailbox / Get-RemoteMailbox / Get-ADUser, to read from one DC consistently.

.EXAMPLE
    .\Export-ExocmOnPrem.ps1 -Path C:\Temp\onprem.csv -IncludeEntraObjectId
    exocm findings --profile contoso --onprem-csv C:\Temp\onprem.csv --format html --out findings.html

.NOTES
    Runs in Windows PowerShell 5.1 (the Exchange Management Shell itself) and in PowerShell 7
    (after importing an Exchange session: New-PSSession -ConfigurationName Microsoft.Exchange
    -ConnectionUri http://ex01/PowerShell/ -Authentication Kerberos | Import-PSSession). It uses
    no syntax newer than 5.1: no ternary, no ?? or ?., no ForEach-Object -Parallel.
    Output: Export-Csv -NoTypeInformation -Encoding UTF8, which is UTF-8 with a BOM in Windows
    PowerShell 5.1 and UTF-8 without one in PowerShell 7; exocm reads both, and files written by
    hand with Export-Csv in any encoding or delimiter.
#>
[CmdletBinding()]
param(
    [Parameter()] [string] $Path = '.\exocm-onprem.csv',
    [Parameter()] [switch] $IncludeEntraObjectId,
    [Parameter()] [string] $DomainController
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$common = @{ ResultSize = 'Unlimited' }
if ($DomainController) { $common['DomainController'] = $DomainController }

function Join-Values {
    param($Value)
    if ($null -eq $Value) { return '' }
    # ProxyAddressCollection / MultiValuedProperty: ToString() of each item, joined with ';'
    return (@($Value | ForEach-Object { $_.ToString() }) -join ';')
}

function Format-Guid {
    param($Value)
    if ($null -eq $Value) { return '' }
    return $Value.ToString()
}

function Format-Utc {
    param($Value)
    if ($null -eq $Value) { return '' }
    return ([datetime]$Value).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', [Globalization.CultureInfo]::InvariantCulture)
}

$entraIds = @{}
if ($IncludeEntraObjectId) {
    try {
        Import-Module ActiveDirectory -ErrorAction Stop
        $adParams = @{ Filter = 'msDS-ExternalDirectoryObjectId -like "*"'; Properties = 'msDS-ExternalDirectoryObjectId' }
        if ($DomainController) { $adParams['Server'] = $DomainController }
        foreach ($u in Get-ADUser @adParams) {
            $id = [string]$u.'msDS-ExternalDirectoryObjectId'
            if ($id) { $entraIds[[string]$u.DistinguishedName] = ($id -replace '^User_', '') }
        }
        Write-Verbose ("Read msDS-ExternalDirectoryObjectId for {0} users" -f $entraIds.Count)
    } catch {
        Write-Warning "msDS-ExternalDirectoryObjectId not read ($($_.Exception.Message)); exocm will join on UPN and addresses."
    }
}

function ConvertTo-ExocmRow {
    param($Recipient)
    $row = [ordered]@{
        UserPrincipalName    = [string]$Recipient.UserPrincipalName
        PrimarySmtpAddress   = [string]$Recipient.PrimarySmtpAddress
        Alias                = [string]$Recipient.Alias
        RecipientTypeDetails = [string]$Recipient.RecipientTypeDetails
        ExchangeGuid         = Format-Guid $Recipient.ExchangeGuid
        ArchiveGuid          = Format-Guid $Recipient.ArchiveGuid
        LegacyExchangeDN     = [string]$Recipient.LegacyExchangeDN
        EmailAddresses       = Join-Values $Recipient.EmailAddresses
        WhenChanged          = Format-Utc $(if ($Recipient.PSObject.Properties['WhenChangedUTC'] -and $Recipient.WhenChangedUTC) { $Recipient.WhenChangedUTC } else { $Recipient.WhenChanged })
    }
    foreach ($i in 1..15) { $row["CustomAttribute$i"] = [string]$Recipient."CustomAttribute$i" }
    foreach ($i in 1..5) { $row["ExtensionCustomAttribute$i"] = Join-Values $Recipient."ExtensionCustomAttribute$i" }
    $row['DistinguishedName'] = [string]$Recipient.DistinguishedName
    $row['OrganizationalUnit'] = [string]$Recipient.OrganizationalUnit
    $dn = [string]$Recipient.DistinguishedName
    $row['ExternalDirectoryObjectId'] = $(if ($entraIds.ContainsKey($dn)) { $entraIds[$dn] } else { '' })
    $row['WhenCreated'] = Format-Utc $(if ($Recipient.PSObject.Properties['WhenCreatedUTC'] -and $Recipient.WhenCreatedUTC) { $Recipient.WhenCreatedUTC } else { $Recipient.WhenCreated })
    [pscustomobject]$row
}

$count = 0
& {
    foreach ($m in Get-Mailbox @common) { ConvertTo-ExocmRow $m }
    foreach ($m in Get-RemoteMailbox @common) { ConvertTo-ExocmRow $m }
} | ForEach-Object {
    $count++
    if ($count % 1000 -eq 0) { Write-Progress -Activity 'Export-ExocmOnPrem' -Status "$count recipients" }
    $_
} | Export-Csv -Path $Path -NoTypeInformation -Encoding UTF8

Write-Progress -Activity 'Export-ExocmOnPrem' -Completed
Write-Host ("Wrote {0} recipients to {1}" -f $count, (Resolve-Path -LiteralPath $Path))
